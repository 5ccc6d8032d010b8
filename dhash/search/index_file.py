"""Index files: an HDF5 file holding a search index and what the code file knew about its codes.

Layout (``format_version`` 1)::

    attrs   dhash_index = 1, kind = "linear" | "mih", bits, bitorder = "little",
            substrings (MIH: the requested count, 0 = automatic), ntotal, dhash_version, created,
            source (the code file it was built from) and the code file's provenance attributes
            prefixed with "source_"
    codes   uint8 N x ceil(bits/8), chunked    the indexed codes, in index order
    ids     UTF-8 strings (optional)           copied from the code file
    labels  uint8 N x C (optional)             copied from the code file

MIH tables are not stored: they are rebuilt from ``codes`` when the file is loaded (about a
second per million codes), which keeps the file as small as the code file.
"""
from __future__ import annotations

import datetime as _dt
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ..atomic import atomic_path
from .codes import BITORDER, PROVENANCE_TEXT, CodeFile, bits_attr, check_codes, read_code_file
from ..errors import DHashError
from .h5layout import (check_datasets, check_memory, int_attr, open_h5, provenance, read_ids, read_labels,
                       str_attr)
from .index import INDEX_KINDS, LinearIndex, MIHIndex

INDEX_FORMAT = 1
AUTO_MIH_MIN_N = 1 << 16  # "auto" builds MIH from this many codes on (and when it has >= 2 substrings)

Index = LinearIndex | MIHIndex


@dataclass
class IndexFile:
    """A loaded index with the ids, labels and attributes stored beside it."""

    index: Index
    ids: list[str] | None = None
    labels: np.ndarray | None = None
    attrs: dict[str, Any] = field(default_factory=dict)


def choose_kind(kind: str, bits: int, n: int) -> str:
    """Resolve ``auto`` | ``linear`` | ``mih``: auto means MIH for large databases it can split."""
    if kind not in (*INDEX_KINDS, "auto"):
        raise DHashError(f"kind: expected auto, linear or mih, got {kind!r}")
    if kind != "auto":
        return kind
    from . import _core

    return "mih" if n >= AUTO_MIH_MIN_N and _core.auto_substrings(bits, n) >= 2 else "linear"


def build_index(codes: CodeFile, kind: str = "auto", substrings: int | None = None) -> Index:
    """An index over the codes of a :class:`~dhash.search.codes.CodeFile`."""
    kind = choose_kind(kind, codes.bits, len(codes))
    if substrings is not None and kind != "mih":
        raise DHashError("substrings: only a mih index has substrings (use --kind mih)")
    index = MIHIndex(codes.bits, substrings) if kind == "mih" else LinearIndex(codes.bits)
    index.add(codes.codes)
    return index


def save_index(index: Index, path: str | os.PathLike, ids: Any = None, labels: np.ndarray | None = None,
               attrs: dict[str, Any] | None = None, inputs: Any = ()) -> Path:
    """Write ``index`` (with optional ids / labels / attributes) to ``path`` atomically."""
    from .. import __version__

    codes = index.codes()
    n = len(codes)
    if ids is not None and len(ids) != n:
        raise DHashError(f"ids: expected {n} ids, got {len(ids)}")
    if labels is not None and len(labels) != n:
        raise DHashError(f"labels: expected {n} rows, got {len(labels)}")
    out = Path(path)
    with atomic_path(out, inputs) as tmp, h5py.File(tmp, "w") as f:
        width = codes.shape[1]
        chunk = (max(1, min(n, (1 << 20) // width)), width) if n else None
        f.create_dataset("codes", data=codes, chunks=chunk)
        if ids is not None:
            f.create_dataset("ids", data=list(ids), dtype=h5py.string_dtype("utf-8"))
        if labels is not None:
            f.create_dataset("labels", data=np.asarray(labels, dtype=np.uint8), compression="gzip" if n else None)
        header = {
            **(attrs or {}),
            "dhash_index": INDEX_FORMAT, "kind": index.kind, "bits": index.bits, "bitorder": BITORDER,
            "ntotal": n, "dhash_version": __version__,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        }
        if isinstance(index, MIHIndex):
            header["substrings"] = index.requested_substrings or 0
        for key, value in header.items():
            if value is not None:
                f.attrs[key] = value
    return out


INDEX_ATTRS = ("dhash_index", "kind", "bits", "bitorder", "ntotal", "substrings")
INDEX_TEXT = ("dhash_version", "created", "source", *(f"source_{k}" for k in PROVENANCE_TEXT))


def load_index(path: str | os.PathLike) -> IndexFile:
    """Read an index file written by :func:`save_index`, validated first (MIH tables are rebuilt here)."""
    with open_h5(path) as f:
        if "dhash_index" not in f.attrs:
            hint = " (this is a code file: build an index with `dhash index`)" if "codes" in f else ""
            raise DHashError(f"{path}: not a dhash index file{hint}")
        version = int_attr(f, "dhash_index", path)
        if version != INDEX_FORMAT:
            raise DHashError(f"{path}: unsupported index format {version} (this dhash reads {INDEX_FORMAT})")
        kind = str_attr(f, "kind", path)
        if kind not in INDEX_KINDS:
            raise DHashError(f"{path}: unknown index kind {kind!r} (expected {' or '.join(INDEX_KINDS)})")
        bits = bits_attr(f, path)
        ds = check_datasets(f, path, bits)
        ntotal = int_attr(f, "ntotal", path)
        if ntotal != ds.n:
            raise DHashError(f"{path}: attribute ntotal = {ntotal} but 'codes' holds {ds.n} codes")
        substrings = int_attr(f, "substrings", path, required=kind == "mih")
        attrs = provenance(f, path, skip=INDEX_ATTRS, text=INDEX_TEXT)
        attrs.update(dhash_index=version, kind=kind, bits=bits, bitorder=BITORDER, ntotal=ntotal)
        if substrings is not None:
            attrs["substrings"] = substrings
        check_memory(path, ds.codes, ds.labels)
        codes, labels, ids = ds.codes[()], read_labels(ds.labels, path), read_ids(ds.ids, path)
    try:
        codes = check_codes(codes, bits, "codes")
        index: Index = MIHIndex(bits, substrings or None) if kind == "mih" else LinearIndex(bits)
    except DHashError as exc:
        raise DHashError(f"{path}: {exc}") from None
    index.add(codes)
    return IndexFile(index, ids, labels, attrs)


def index_code_file(codes_path: str | os.PathLike, out: str | os.PathLike, kind: str = "auto",
                    substrings: int | None = None) -> IndexFile:
    """Build an index from a code file and save it with the file's ids, labels and provenance."""
    data = read_code_file(codes_path)
    index = build_index(data, kind, substrings)
    attrs = {f"source_{k}": v for k, v in data.attrs.items()}
    attrs["source"] = os.fspath(codes_path)
    save_index(index, out, data.ids, data.labels, attrs, inputs=[codes_path])
    return IndexFile(index, list(data.ids) if data.ids is not None else None, data.labels, attrs)
