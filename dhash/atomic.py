"""Write outputs atomically: to a temporary file beside the target, renamed into place on success.

The temporary file is ``.NAME.PID.XXXXXXXX.tmp``. A writer killed outright (SIGKILL, power loss) cannot
remove its own. The next write to the same target removes it once process PID no longer exists.
"""
from __future__ import annotations

import glob
import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import DHashError


def check_not_input(output: str | os.PathLike, inputs: Iterable[str | os.PathLike] = ()) -> Path:
    """Refuse an output path that names one of the inputs; return it as a ``Path``."""
    out = Path(output)
    for inp in inputs:
        if out.exists() and Path(inp).exists() and os.path.samefile(out, inp):
            raise DHashError(f"{out}: refusing to overwrite an input file; choose another output path")
    return out


def _remove_stale(out: Path) -> None:
    """Remove the temporary files that writers of ``out`` which no longer run have left behind."""
    for tmp in out.parent.glob(f".{glob.escape(out.name)}.*.tmp"):
        pid = tmp.name[len(out.name) + 2:].split(".")[0]
        if pid.isdigit() and not _alive(int(pid)):
            tmp.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


@contextmanager
def atomic_path(output: str | os.PathLike, inputs: Iterable[str | os.PathLike] = ()) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; rename it onto ``output`` only if the block succeeds.

    On any exception (including KeyboardInterrupt) the temporary file is removed and the
    target is left as it was.
    """
    out = check_not_input(output, inputs)
    out.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale(out)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.{os.getpid()}.", suffix=".tmp", dir=out.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the output the usual permissions
    try:
        yield Path(tmp)
        os.replace(tmp, out)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
