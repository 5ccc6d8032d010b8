"""faiss binary indexes (``pip install 'dhash[faiss]'``): build, save, load and search them.

A faiss file written by ``dhash export --to faiss`` is the index itself
(``faiss.write_index_binary``) plus a side file ``NAME.faiss.h5`` with the ids, labels and
attributes of the code file (``docs/file-format.md``). Kinds:

* ``flat`` — ``IndexBinaryFlat``: exact scan; the same distances as dhash's own search.
* ``multihash`` — ``IndexBinaryMultiHash`` (multi-index hashing, Norouzi et al., CVPR 2012,
  with ``nflip`` bit flips per substring and no widening): approximate, it only finds codes
  that share a substring within ``nflip`` flips of the query's.
* ``hnsw`` — ``IndexBinaryHNSW`` (Malkov & Yashunin, TPAMI 2018, on Hamming distance):
  approximate graph search, no radius search.

faiss binary indexes need a dimension that is a multiple of 8: codes of 12 or 100 bits are
indexed as their packed bytes (16, 104 bits), whose padding bits are 0 in every code, so every
Hamming distance is unchanged. Results are re-ordered by (distance, index) per query; faiss
breaks ties at the k-th distance its own way, so the ids can differ from dhash's there (never
the distances, for ``flat``).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ...atomic import atomic_path
from ...errors import DHashError
from .. import _core
from ..codes import BITORDER, CodeFile, check_bits, check_codes
from ..index_file import IndexFile
from . import canonical_range, canonical_topk, no_kernel

FAISS_KINDS = ("flat", "multihash", "hnsw")
SIDE_FORMAT = 1
HNSW_M = 32  # graph neighbours per node


def _faiss() -> Any:
    try:
        import faiss
    except ImportError:
        raise DHashError("faiss is not installed: pip install 'dhash[faiss]'") from None
    return faiss


def side_file(path: str | os.PathLike) -> Path:
    """The side file (ids, labels, attributes) of faiss file ``path``: ``path`` + ``.h5``."""
    p = Path(path)
    return p.with_name(p.name + ".h5")


class FaissIndex:
    """A faiss binary index over dhash codes, searched like :class:`dhash.search.index.LinearIndex`."""

    def __init__(self, bits: int, kind: str = "flat", n_hint: int = 1 << 20, nflip: int = 2,
                 ef_search: int = 64, index: Any = None) -> None:
        if kind not in FAISS_KINDS:
            raise DHashError(f"faiss index: expected one of {', '.join(FAISS_KINDS)}, got {kind!r}")
        self.bits, self.kind = check_bits(bits), kind
        self.dim = 8 * ((self.bits + 7) // 8)
        self.ef_search = int(ef_search)
        self._faiss = _faiss()
        if index is None:
            index = self._new(n_hint, nflip)
        elif index.d != self.dim:
            raise DHashError(f"faiss index has dimension {index.d}, {self.bits}-bit codes need {self.dim}")
        self.index = index

    def _new(self, n_hint: int, nflip: int) -> Any:
        faiss = self._faiss
        if self.kind == "flat":
            return faiss.IndexBinaryFlat(self.dim)
        if self.kind == "hnsw":
            return faiss.IndexBinaryHNSW(self.dim, HNSW_M)
        m = max(1, min(_core.auto_substrings(self.bits, max(n_hint, 2)), self.dim // 8))
        index = faiss.IndexBinaryMultiHash(self.dim, m, self.dim // m)
        index.nflip = nflip
        return index

    @property
    def ntotal(self) -> int:
        """Number of codes in the index."""
        return int(self.index.ntotal)

    def add(self, codes: np.ndarray) -> None:
        """Append packed codes (N × ceil(bits/8) uint8)."""
        self.index.add(check_codes(codes, self.bits))

    def _queries(self, queries: Any, threads: int | None, kernel: str | None) -> np.ndarray:
        no_kernel(kernel, "faiss")
        if threads is not None:
            self._faiss.omp_set_num_threads(int(threads))
        if isinstance(queries, np.ndarray) and queries.ndim == 1:
            queries = queries[None, :]
        return check_codes(queries, self.bits, "queries")

    def search(self, queries: np.ndarray, k: int, threads: int | None = None,
               kernel: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        """k nearest neighbours: ``(distances int32 nq×k, indices int64 nq×k)``, padded with -1."""
        q = self._queries(queries, threads, kernel)
        if self.kind == "hnsw":
            self.index.hnsw.efSearch = max(self.ef_search, int(k))
        dist, idx = self.index.search(q, int(k))
        return canonical_topk(dist, idx, self.bits)

    def range_search(self, queries: np.ndarray, radius: int, threads: int | None = None,
                     kernel: str | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Codes within ``radius`` (inclusive): ``(lims, distances, indices)`` as dhash's own."""
        if self.kind == "hnsw":
            raise DHashError("faiss hnsw indexes have no radius search; use -k, or export with --faiss-index flat")
        q = self._queries(queries, threads, kernel)
        lims, dist, idx = self.index.range_search(q, int(radius) + 1)  # faiss keeps d < radius
        return canonical_range(lims, dist, idx)


def save_faiss(ix: FaissIndex, path: str | os.PathLike, ids: Any = None, labels: np.ndarray | None = None,
               attrs: dict[str, Any] | None = None, inputs: Any = ()) -> Path:
    """Write the faiss file and its side file, each to a temporary file renamed into place."""
    from ... import __version__

    out = Path(path)
    n = ix.ntotal
    with atomic_path(out, inputs) as tmp_index, atomic_path(side_file(out), inputs) as tmp_side:
        ix._faiss.write_index_binary(ix.index, os.fspath(tmp_index))
        with h5py.File(tmp_side, "w") as f:
            if ids is not None:
                f.create_dataset("ids", data=list(ids), dtype=h5py.string_dtype("utf-8"))
            if labels is not None:
                f.create_dataset("labels", data=np.asarray(labels, dtype=np.uint8), compression="gzip" if n else None)
            header = {**(attrs or {}), "dhash_faiss": SIDE_FORMAT, "kind": ix.kind, "bits": ix.bits,
                      "bitorder": BITORDER, "ntotal": n, "faiss_file": out.name,
                      "faiss_bytes": os.path.getsize(tmp_index), "dhash_version": __version__}
            for key, value in header.items():
                if value is not None:
                    f.attrs[key] = value
    return out


def load_faiss(path: str | os.PathLike) -> IndexFile:
    """Read a faiss file and its side file; ``IndexFile.index`` is a :class:`FaissIndex`."""
    p, side = Path(path), side_file(path)
    if not p.exists():
        raise DHashError(f"{p}: no such file")
    if not side.exists():
        raise DHashError(f"{p}: no side file {side.name} beside it (write faiss files with `dhash export --to faiss`)")
    try:
        with h5py.File(side, "r") as f:
            attrs = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in f.attrs.items()}
            ids = [s.decode("utf-8") if isinstance(s, bytes) else str(s) for s in f["ids"][()]] if "ids" in f else None
            labels = f["labels"][()] if "labels" in f else None
    except OSError as exc:
        raise DHashError(f"{side}: not an HDF5 file ({str(exc).splitlines()[0]})") from None
    if attrs.get("dhash_faiss") != SIDE_FORMAT or attrs.get("kind") not in FAISS_KINDS:
        raise DHashError(f"{side}: not a dhash faiss side file (dhash_faiss {attrs.get('dhash_faiss')!r})")
    if os.path.getsize(p) != attrs.get("faiss_bytes"):
        raise DHashError(f"{p}: {os.path.getsize(p)} bytes but its side file {side.name} was written for "
                         f"{attrs.get('faiss_bytes')} (files from different exports?)")
    try:
        index = _faiss().read_index_binary(os.fspath(p))
    except RuntimeError as exc:
        raise DHashError(f"{p}: not a faiss binary index ({str(exc).strip().splitlines()[-1]})") from None
    ix = FaissIndex(int(attrs["bits"]), attrs["kind"], index=index)
    for name, rows in (("ids", ids), ("labels", labels)):
        if rows is not None and len(rows) != ix.ntotal:
            raise DHashError(f"{side}: {len(rows)} {name} for {ix.ntotal} codes in {p.name}")
    return IndexFile(ix, ids, labels, attrs)


def export_faiss(data: CodeFile, out: str | os.PathLike, kind: str = "flat", source: str | os.PathLike | None = None,
                 nflip: int = 2) -> FaissIndex:
    """Build a faiss index of ``kind`` over a code file's codes and save it with its ids and labels."""
    ix = FaissIndex(data.bits, kind, n_hint=len(data), nflip=nflip)
    ix.add(data.codes)
    attrs = {f"source_{k}": v for k, v in data.attrs.items()}
    if source is not None:
        attrs["source"] = os.fspath(source)
    if kind == "multihash":
        attrs["nflip"] = nflip
    save_faiss(ix, out, data.ids, data.labels, attrs, inputs=[source] if source is not None else ())
    return ix
