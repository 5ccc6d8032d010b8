"""Finding the built-in data sets on disk, and fetching them from their official source when absent.

Look-up order: ``data_dir`` (``--data-dir``), ``$DHASH_DATA``, the Debian package location
(``/usr/share/datasets``), then dhash's download folder (``$XDG_CACHE_HOME/dhash`` or
``~/.cache/dhash``). In each, a data set is looked for in its own sub-folder and then in the folder
itself. Downloads go to the first writable one of ``data_dir``, ``$DHASH_DATA`` and the download
folder (never into the system location) and are checked against the published MD5 sums; files
found on disk are not (the Debian package recompresses them), they are validated when read.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.request import urlopen

from ...atomic import atomic_path
from ...errors import DHashError

DEBIAN_ROOT = Path("/usr/share/datasets")


@dataclass(frozen=True)
class Remote:
    """Where a data set is published: base URLs tried in order, and each file's MD5."""

    mirrors: tuple[str, ...]
    md5: dict[str, str]
    archive_folder: str | None = None  # a .tar.gz unpacks to this folder; None: files used as they are


def search_roots(data_dir: str | os.PathLike | None) -> list[Path]:
    """The folders searched for built-in data sets, in order."""
    roots = [Path(data_dir)] if data_dir else []
    if os.environ.get("DHASH_DATA"):
        roots.append(Path(os.environ["DHASH_DATA"]))
    return [*roots, DEBIAN_ROOT, download_root()]


def download_root() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "dhash"


def locate(
    name: str,
    folders: tuple[str, ...],
    complete: Callable[[Path], bool],
    remote: Remote,
    hint: str,
    data_dir: str | os.PathLike | None = None,
) -> Path:
    """Return the first folder that ``complete`` accepts, downloading the data set if there is none.

    ``folders`` are the sub-folder names a data set may sit in under each search root; the first
    one is where a download is put.
    """
    roots = search_roots(data_dir)
    for root in roots:
        for folder in (*(root / f for f in folders), root):
            if complete(folder):
                return folder
    searched = ", ".join(str(r) for r in roots)
    target_root = _first_writable(data_dir)
    if target_root is None:
        raise DHashError(f"{name}: not found in {searched} and no writable folder to download it to; {hint}")
    target = target_root / folders[0]
    try:
        _download(remote, target)
    except DHashError as err:
        raise DHashError(f"{name}: not found in {searched}; {err}; {hint}") from None
    if not complete(target):
        raise DHashError(f"{name}: the download in {target} is incomplete; delete it and retry; {hint}")
    return target


def _first_writable(data_dir: str | os.PathLike | None) -> Path | None:
    """Where downloads go: the first of ``data_dir``, ``$DHASH_DATA``, the download folder that can be written."""
    for root in search_roots(data_dir):
        if root == DEBIAN_ROOT:
            continue
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError:
            continue
        if os.access(root, os.W_OK):
            return root
    return None


def _download(remote: Remote, target: Path) -> None:
    if remote.archive_folder is None:
        target.mkdir(parents=True, exist_ok=True)
        for file, md5 in remote.md5.items():
            if not (target / file).exists():
                fetch(remote.mirrors, file, md5, target / file)
        return
    (archive, md5), = remote.md5.items()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".download.", dir=target.parent))
    try:
        fetch(remote.mirrors, archive, md5, tmp / archive)
        with tarfile.open(tmp / archive) as tar:
            tar.extractall(tmp, filter="data")
        os.replace(tmp / remote.archive_folder, target)
    except (OSError, tarfile.TarError) as err:
        raise DHashError(f"cannot unpack {archive} into {target.parent}: {err}") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def fetch(mirrors: tuple[str, ...], file: str, md5: str, dest: Path) -> None:
    """Download ``file`` from the first mirror that serves it, verify its MD5, write ``dest`` atomically."""
    reasons = []
    for base in mirrors:
        url = base + file
        try:
            with atomic_path(dest) as tmp, urlopen(url, timeout=30) as response, open(tmp, "wb") as out:
                digest = hashlib.md5(usedforsecurity=False)
                while block := response.read(1 << 20):
                    digest.update(block)
                    out.write(block)
                if digest.hexdigest() != md5:
                    raise DHashError(f"checksum mismatch for {url} (MD5 {digest.hexdigest()}, expected {md5})")
            return
        except OSError as err:  # URLError, HTTPError and timeouts are OSErrors
            reasons.append(f"{url}: {getattr(err, 'reason', err)}")
    raise DHashError("download failed (" + "; ".join(reasons) + ")")
