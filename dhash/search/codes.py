"""Binary codes: packing, unpacking and the HDF5 code file (see ``docs/file-format.md``).

A code of ``bits`` bits is packed into ``ceil(bits / 8)`` bytes, bit ``j`` at byte ``j // 8``,
position ``j % 8`` (little bit order, as faiss and ``np.packbits(..., bitorder="little")``);
padding bits are 0. Bit value 1 means a strictly positive real value; an exact zero gives bit 0
(the negative side), the rule of the SDSH authors' code, so ``sgn(0)`` is never ambiguous.
"""
from __future__ import annotations

import datetime as _dt
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ..atomic import atomic_path
from ..errors import DHashError
from .h5layout import (Datasets, check_datasets, check_memory, int_attr, open_h5, provenance, read_ids, read_labels,
                       str_attr)

FORMAT_VERSION = 1
MAX_BITS = 1024
BITORDER = "little"


def check_bits(bits: int, where: str = "bits") -> int:
    """Validate a code length (1..1024) and return it as ``int``."""
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or not 1 <= int(bits) <= MAX_BITS:
        raise DHashError(f"{where}: code length must be an integer in 1..{MAX_BITS}, got {bits!r}")
    return int(bits)


def pack_codes(values: Any) -> np.ndarray:
    """Pack an ``N × bits`` array of real values (or signs, or 0/1) into ``N × ceil(bits/8)`` uint8.

    Bit ``j`` is 1 where ``values[:, j] > 0``. Accepts NumPy arrays and torch tensors.
    """
    if hasattr(values, "detach"):  # torch tensor, without importing torch here
        values = values.detach().cpu().numpy()
    arr = np.asarray(values)
    if arr.ndim != 2:
        raise DHashError(f"pack_codes: expected an N x bits array, got shape {arr.shape}")
    check_bits(arr.shape[1])
    return np.packbits(arr > 0, axis=1, bitorder=BITORDER)


def unpack_codes(codes: np.ndarray, bits: int) -> np.ndarray:
    """Unpack ``N × ceil(bits/8)`` uint8 codes into an ``N × bits`` array of 0/1 (uint8)."""
    codes = check_codes(codes, bits)
    return np.unpackbits(codes, axis=1, count=bits, bitorder=BITORDER)


def codes_to_signs(codes: np.ndarray, bits: int, dtype: Any = np.float32) -> np.ndarray:
    """Unpack codes into an ``N × bits`` array of ±1."""
    return unpack_codes(codes, bits).astype(dtype) * 2 - 1


def check_codes(codes: Any, bits: int, where: str = "codes") -> np.ndarray:
    """Validate packed codes (uint8, 2-D, ``ceil(bits/8)`` wide, zero padding bits); return them C-contiguous."""
    check_bits(bits, where)
    if not isinstance(codes, np.ndarray):
        raise DHashError(f"{where}: expected a NumPy uint8 array, got {type(codes).__name__}")
    if codes.dtype != np.uint8:
        raise DHashError(f"{where}: expected dtype uint8, got {codes.dtype}")
    if codes.ndim != 2:
        raise DHashError(f"{where}: expected a 2-D array (N x bytes), got {codes.ndim}-D")
    width = (bits + 7) // 8
    if codes.shape[1] != width:
        raise DHashError(f"{where}: {bits}-bit codes need {width} bytes per row, got {codes.shape[1]}")
    if bits % 8 and len(codes) and np.any(codes[:, -1] >> (bits % 8)):
        raise DHashError(f"{where}: padding bits beyond bit {bits} are not zero (wrong bit order or width?)")
    return np.ascontiguousarray(codes)


@dataclass
class CodeFile:
    """The contents of an HDF5 code file.

    ``labels`` is ``N × C`` multi-hot uint8 (or None), ``ids`` a list of N strings (or None),
    ``attrs`` the provenance attributes (method, model_sha256, dataset, split, ...).
    """

    codes: np.ndarray
    bits: int
    labels: np.ndarray | None = None
    ids: Sequence[str] | None = None
    attrs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.bits = check_bits(self.bits)
        self.codes = check_codes(self.codes, self.bits)
        n = len(self.codes)
        if self.labels is not None:
            self.labels = np.asarray(self.labels)
            if self.labels.ndim != 2 or len(self.labels) != n:
                raise DHashError(f"labels: expected shape ({n}, C), got {self.labels.shape}")
            self.labels = self.labels.astype(np.uint8, copy=False)
        if self.ids is not None and len(self.ids) != n:
            raise DHashError(f"ids: expected {n} ids, got {len(self.ids)}")

    def __len__(self) -> int:
        return len(self.codes)


def _provenance() -> dict[str, Any]:
    from .. import __version__

    return {
        "dhash_version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def write_code_file(
    path: str | os.PathLike, data: CodeFile, inputs: Iterable[str | os.PathLike] = ()
) -> Path:
    """Write ``data`` to ``path`` atomically (temporary file, then rename); never overwrites an input."""
    out = Path(path)
    with atomic_path(out, inputs) as tmp, h5py.File(tmp, "w") as f:
        n, width = data.codes.shape
        chunk_rows = max(1, min(n, (1 << 20) // max(width, 1)))
        f.create_dataset("codes", data=data.codes, chunks=(chunk_rows, width) if n else None)
        if data.labels is not None:
            f.create_dataset("labels", data=data.labels, compression="gzip" if n else None)
        if data.ids is not None:
            f.create_dataset("ids", data=list(data.ids), dtype=h5py.string_dtype("utf-8"))
        attrs = {**_provenance(), **data.attrs}
        attrs.update(bits=data.bits, bitorder=BITORDER, format_version=FORMAT_VERSION)
        for key, value in attrs.items():
            if value is not None:
                f.attrs[key] = value
    return out


PROVENANCE_TEXT = ("dhash_version", "created", "method", "model", "model_sha256", "dataset", "split")


def bits_attr(f: h5py.File, path: str | os.PathLike) -> int:
    """The code length of an open code or index file, its ``bitorder`` and ``bits`` attributes checked."""
    bitorder = str_attr(f, "bitorder", path)
    if bitorder != BITORDER:
        raise DHashError(f"{path}: bitorder must be '{BITORDER}', got {bitorder!r}")
    try:
        return check_bits(int_attr(f, "bits", path))
    except DHashError as exc:
        raise DHashError(f"{path}: invalid 'bits' attribute ({exc})") from None


def _header(f: h5py.File, path: str | os.PathLike) -> tuple[int, Datasets, dict[str, Any]]:
    """Check an open code file's layout (``docs/file-format.md``); return bits, checked datasets, provenance."""
    if "codes" not in f:
        raise DHashError(f"{path}: not a dhash code file (no 'codes' dataset)")
    version = int_attr(f, "format_version", path)
    if version != FORMAT_VERSION:
        raise DHashError(f"{path}: unsupported format_version {version} (this dhash reads {FORMAT_VERSION})")
    bits = bits_attr(f, path)
    attrs = provenance(f, path, skip=("bits", "bitorder", "format_version"), text=PROVENANCE_TEXT)
    return bits, check_datasets(f, path, bits), attrs


def read_code_file(path: str | os.PathLike) -> CodeFile:
    """Read and validate a code file; errors are one-line ``DHashError`` naming the file."""
    with open_h5(path) as f:
        bits, ds, attrs = _header(f, path)
        check_memory(path, ds.codes, ds.labels)
        codes, labels, ids = ds.codes[()], read_labels(ds.labels, path), read_ids(ds.ids, path)
    try:
        return CodeFile(codes, bits, labels, ids, attrs)
    except DHashError as exc:
        raise DHashError(f"{path}: {exc}") from None


def code_file_info(path: str | os.PathLike) -> tuple[int, int]:
    """Return ``(bits, N)`` of a code file without reading its codes."""
    with open_h5(path) as f:
        bits, ds, _ = _header(f, path)
        return bits, ds.n


def iter_code_blocks(path: str | os.PathLike, block_rows: int = 1 << 20) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(start_row, codes_block)`` over a code file's codes, ``block_rows`` rows at a time."""
    if block_rows < 1:
        raise DHashError(f"block_rows must be >= 1, got {block_rows}")
    with open_h5(path) as f:
        _, ds, _ = _header(f, path)
        for start in range(0, ds.n, block_rows):
            yield start, np.ascontiguousarray(ds.codes[start : start + block_rows])
