"""Write outputs atomically: to a temporary file beside the target, renamed into place on success."""
from __future__ import annotations

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


@contextmanager
def atomic_path(output: str | os.PathLike, inputs: Iterable[str | os.PathLike] = ()) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; rename it onto ``output`` only if the block succeeds.

    On any exception (including KeyboardInterrupt) the temporary file is removed and the
    target is left as it was.
    """
    out = check_not_input(output, inputs)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
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
