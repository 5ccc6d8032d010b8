"""Checks every HDF5 file dhash reads (code files and index files, ``docs/file-format.md``) passes
before its data is read.

Every reader goes through here. ``open_h5`` opens a file and turns any failure of the HDF5 library
inside its block into one line naming the file. ``int_attr`` / ``str_attr`` / ``provenance`` read
typed attributes. ``check_datasets`` checks ``codes``, ``labels`` and ``ids``. Each must be a dataset
stored in the file itself: a hard link, not a group, soft link, external link, virtual dataset or
external raw storage. Each must have the documented dtype and shape, and all must agree on the number
of rows. Its claimed size must be backed by storage in the file: every chunk written, contiguous data
allocated and not a hole of a sparse file, and compressed data no larger than deflate could expand.
So a file of a few bytes that claims 10^12 rows fails at once. It does not hang or ask for terabytes.
"""
from __future__ import annotations

import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ..errors import DHashError

MAX_DEFLATE_RATIO = 1032  # the most deflate (gzip) can expand: 258 bytes from 2 bits
SPARSE_RATIO = 1024  # contiguous data this many times larger than the file's allocated blocks is a hole
SPARSE_MIN_BYTES = 1 << 26  # ... when it is larger than this (small files may sit in inline blocks)


@contextmanager
def open_h5(path: str | os.PathLike) -> Iterator[h5py.File]:
    """Open ``path`` for reading. Inside the block, an HDF5 error or a MemoryError becomes a one-line ``DHashError``."""
    p = Path(path)
    if not p.exists():
        raise DHashError(f"{p}: no such file")
    if not p.is_file():
        raise DHashError(f"{p}: not a file")
    try:
        f = h5py.File(p, "r")
    except Exception as exc:  # noqa: BLE001 - whatever the library says, the file is not readable HDF5
        raise DHashError(f"{p}: not an HDF5 file ({_reason(exc)})") from None
    try:
        with f:
            yield f
    except DHashError:
        raise
    except MemoryError:
        raise DHashError(f"{p}: too large to read into memory") from None
    except Exception as exc:  # noqa: BLE001 - a corrupt object, chunk or attribute deep in the file
        raise DHashError(f"{p}: corrupt HDF5 file ({_reason(exc)})") from None


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:200] if text else type(exc).__name__


def int_attr(f: h5py.File, name: str, path: str | os.PathLike, required: bool = True) -> int | None:
    """Root attribute ``name`` as an int. It must be a scalar integer, not a string, an array or a bool."""
    if name not in f.attrs:
        if required:
            raise DHashError(f"{path}: missing attribute '{name}'")
        return None
    value = f.attrs[name]
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise DHashError(f"{path}: attribute '{name}' must be an integer, got {_describe(value)}")
    return int(value)


def str_attr(f: h5py.File, name: str, path: str | os.PathLike, required: bool = True) -> str | None:
    """Root attribute ``name`` as a str. It must be a scalar string, given as UTF-8 text."""
    if name not in f.attrs:
        if required:
            raise DHashError(f"{path}: missing attribute '{name}'")
        return None
    return _text(f.attrs[name], f"{path}: attribute '{name}'")


def _text(value: Any, where: str) -> str:
    if isinstance(value, (bytes, np.bytes_)):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            raise DHashError(f"{where} is not valid UTF-8") from None
    if not isinstance(value, str):
        raise DHashError(f"{where} must be a string, got {_describe(value)}")
    return str(value)


def _describe(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return f"an array of shape {value.shape} ({value.dtype})"
    return f"{type(value).__name__} {value!r}"[:80]


def provenance(f: h5py.File, path: str | os.PathLike, skip: tuple[str, ...], text: tuple[str, ...]) -> dict[str, Any]:
    """The root attributes other than ``skip``, as Python values. Those named in ``text`` must be strings.

    Other attributes may be numbers, bools or strings, or 1-D arrays of them. Anything else (references,
    compound types) is refused, because dhash copies the attributes into the files it writes.
    """
    attrs: dict[str, Any] = {}
    for key in f.attrs:
        if key in skip:
            continue
        value = f.attrs[key]
        where = f"{path}: attribute '{key}'"
        if key in text:
            attrs[key] = _text(value, where)
        elif isinstance(value, np.ndarray):
            if value.ndim != 1 or value.dtype.kind not in "biufUSO":
                raise DHashError(f"{where} has an unsupported type ({_describe(value)})")
            attrs[key] = [_text(v, where) for v in value] if value.dtype.kind in "USO" else value
        elif isinstance(value, (bytes, np.bytes_, str)):
            attrs[key] = _text(value, where)
        elif isinstance(value, (np.bool_, np.number, bool, int, float)):
            attrs[key] = value.item() if isinstance(value, np.generic) else value
        else:
            raise DHashError(f"{where} has an unsupported type ({_describe(value)})")
    return attrs


@dataclass
class Datasets:
    """The checked datasets of a code or index file (rows ``n``; ``labels`` / ``ids`` may be None)."""

    codes: h5py.Dataset
    labels: h5py.Dataset | None
    ids: h5py.Dataset | None

    @property
    def n(self) -> int:
        return int(self.codes.shape[0])


def check_datasets(f: h5py.File, path: str | os.PathLike, bits: int) -> Datasets:
    """Check ``codes`` (uint8 N x ceil(bits/8)), ``labels`` (integer 0/1 N x C) and ``ids`` (N strings)."""
    width = (bits + 7) // 8
    codes = _dataset(f, "codes", path, required=True)
    assert codes is not None
    if codes.dtype != np.uint8 or codes.ndim != 2 or codes.shape[1] != width:
        raise DHashError(f"{path}: 'codes' must be uint8 N x {width} for {bits} bits, got {codes.dtype} {codes.shape}")
    n = codes.shape[0]
    labels = _dataset(f, "labels", path, required=False)
    if labels is not None:
        if labels.dtype.kind not in "biu":
            raise DHashError(f"{path}: 'labels' must be 0/1 integers (uint8), got dtype {labels.dtype}")
        if labels.ndim != 2 or labels.shape[0] != n:
            raise DHashError(f"{path}: 'labels' must be N x C with N = {n} (as 'codes'), got shape {labels.shape}")
    ids = _dataset(f, "ids", path, required=False)
    if ids is not None:
        if h5py.check_string_dtype(ids.dtype) is None:
            raise DHashError(f"{path}: 'ids' must be UTF-8 strings, got dtype {ids.dtype}")
        if ids.ndim != 1 or ids.shape[0] != n:
            raise DHashError(f"{path}: 'ids' must hold N = {n} strings (one per code), got shape {ids.shape}")
    return Datasets(codes, labels, ids)


def _dataset(f: h5py.File, name: str, path: str | os.PathLike, required: bool) -> h5py.Dataset | None:
    link = f.get(name, getlink=True)
    if link is None:
        if required:
            raise DHashError(f"{path}: not a dhash code file (no '{name}' dataset)")
        return None
    if isinstance(link, h5py.SoftLink):
        raise DHashError(f"{path}: '{name}' is a soft link to {link.path!r}; dhash reads only datasets stored directly")
    if isinstance(link, h5py.ExternalLink):
        raise DHashError(f"{path}: '{name}' is an external link to {link.filename}:{link.path}; "
                         "dhash reads only datasets stored in the file itself")
    if not isinstance(link, h5py.HardLink):
        raise DHashError(f"{path}: '{name}' is a {type(link).__name__}, not a dataset")
    obj = f[name]
    if not isinstance(obj, h5py.Dataset):
        kind = "group" if isinstance(obj, h5py.Group) else type(obj).__name__
        raise DHashError(f"{path}: '{name}' is a {kind}, not a dataset")
    _check_storage(obj, name, path)
    return obj


def _check_storage(ds: h5py.Dataset, name: str, path: str | os.PathLike) -> None:
    """The dataset's claimed size must be backed by what the file stores."""
    claimed = math.prod(ds.shape) * ds.id.get_type().get_size()
    dcpl = ds.id.get_create_plist()
    layout = dcpl.get_layout()
    stored = ds.id.get_storage_size()
    shape = " x ".join(str(s) for s in ds.shape) or "scalar"
    if layout not in (h5py.h5d.CHUNKED, h5py.h5d.CONTIGUOUS, h5py.h5d.COMPACT):
        raise DHashError(f"{path}: '{name}' is a virtual dataset; dhash reads only datasets stored in the file itself")
    if dcpl.get_external_count():
        raise DHashError(f"{path}: '{name}' keeps its data in external files; dhash reads only data stored in the file")
    if layout == h5py.h5d.CHUNKED:
        expected = math.prod(-(-s // c) for s, c in zip(ds.shape, ds.chunks))
        written = ds.id.get_num_chunks()
        if written < expected:
            raise DHashError(f"{path}: '{name}' claims {shape} but only {written} of its {expected:,} chunks are "
                             "stored (a truncated or forged file)")
        if dcpl.get_nfilters():
            if claimed > MAX_DEFLATE_RATIO * stored + (1 << 16):
                raise DHashError(f"{path}: '{name}' claims {shape} ({claimed:,} bytes) from {stored:,} compressed "
                                 "bytes, more than any compression gives (a forged file)")
            return
    if stored < claimed:
        raise DHashError(f"{path}: '{name}' claims {shape} ({claimed:,} bytes) but the file stores only "
                         f"{stored:,} bytes of it (a truncated or forged file)")
    allocated = os.stat(ds.file.filename).st_blocks * 512
    if claimed > SPARSE_MIN_BYTES and claimed > SPARSE_RATIO * allocated:
        raise DHashError(f"{path}: '{name}' claims {shape} ({claimed:,} bytes) but the file occupies only "
                         f"{allocated:,} bytes on disk (a sparse file: its data is mostly holes)")


def check_memory(path: str | os.PathLike, *datasets: h5py.Dataset | None) -> None:
    """Refuse to load datasets whole that cannot fit in this machine's memory."""
    need = sum(ds.size * ds.dtype.itemsize for ds in datasets if ds is not None)
    have = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    if need > have:
        raise DHashError(f"{path}: needs {need / 2**30:,.1f} GiB of memory, this machine has {have / 2**30:,.1f} GiB")


def read_labels(ds: h5py.Dataset | None, path: str | os.PathLike) -> np.ndarray | None:
    """The labels as uint8 0/1 (None without labels). Any other value is an error."""
    if ds is None:
        return None
    labels = ds[()]
    if labels.size and (labels.min() < 0 or labels.max() > 1):
        raise DHashError(f"{path}: 'labels' must be multi-hot 0/1, found values {labels.min()}..{labels.max()}")
    return labels.astype(np.uint8, copy=False)


def read_ids(ds: h5py.Dataset | None, path: str | os.PathLike) -> list[str] | None:
    """The ids as str (None without ids). An id that is not valid UTF-8 is an error."""
    if ds is None:
        return None
    raw = ds[()]
    ids = []
    for i, item in enumerate(raw):
        try:
            ids.append(bytes(item).decode("utf-8") if isinstance(item, (bytes, np.bytes_)) else str(item))
        except UnicodeDecodeError:
            raise DHashError(f"{path}: ids[{i}] is not valid UTF-8 ({bytes(item)[:40]!r})") from None
    return ids
