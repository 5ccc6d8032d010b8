"""Search engines outside dhash that serve dhash codes: faiss binary index files and Milvus collections.

``faiss`` (``dhash[faiss]``) writes, loads and searches faiss ``IndexBinary`` files with a side
file of ids and labels; ``milvus`` (``dhash[milvus]``) exports codes to a Milvus collection
(``BINARY_VECTOR`` field, ``HAMMING`` metric; Milvus Lite file or server) and searches it. Both
classes have the ``search(q, k)`` / ``range_search(q, radius)`` signatures and result layout of
:class:`dhash.search.index.LinearIndex`. :func:`open_index` picks what ``dhash query`` searches.
The engines are imported only when used.
"""
from __future__ import annotations

import os
from pathlib import Path
import numpy as np

from ...errors import DHashError
from ..index_file import IndexFile


def canonical_topk(dist: np.ndarray, idx: np.ndarray, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """Engine k-NN results in dhash's layout: int32 / int64, each row ordered by (distance, index),
    missing neighbours (index -1) last with distance ``bits + 1``."""
    idx = np.asarray(idx, dtype=np.int64)
    dist = np.where(idx < 0, bits + 1, np.asarray(dist)).astype(np.int32)
    order = np.lexsort((np.where(idx < 0, np.iinfo(np.int64).max, idx), dist), axis=1)
    return np.take_along_axis(dist, order, 1), np.take_along_axis(idx, order, 1)


def canonical_range(lims: np.ndarray, dist: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Engine radius results in dhash's layout: each query's hits ordered by (distance, index)."""
    lims = np.asarray(lims, dtype=np.int64)
    dist, idx = np.asarray(dist, dtype=np.int32), np.asarray(idx, dtype=np.int64)
    qid = np.repeat(np.arange(len(lims) - 1), np.diff(lims))
    order = np.lexsort((idx, dist, qid))
    return lims, dist[order], idx[order]


def no_kernel(kernel: str | None, engine: str) -> None:
    """Engines choose their own distance code: refuse an explicit dhash kernel."""
    if kernel not in (None, "auto"):
        raise DHashError(f"--kernel {kernel}: only dhash's own indexes have kernels, not {engine}")


def open_index(path: str | os.PathLike | None, uri: str | None = None, collection: str | None = None,
               token: str | None = None) -> IndexFile:
    """What ``dhash query`` searches: a Milvus collection (``uri`` + ``collection``), a faiss file
    written by ``dhash export --to faiss`` (it has a side file), or a dhash index file."""
    if uri is not None or collection is not None:
        if path is not None:
            raise DHashError(f"{path}: give either an index file or --uri/--collection, not both")
        if uri is None or collection is None:
            raise DHashError("a Milvus collection needs both --uri URI and --collection NAME")
        from .milvus import MilvusIndex

        ix = MilvusIndex(uri, collection, token)
        return IndexFile(ix, ix.ids, None, ix.attrs)
    if path is None:
        raise DHashError("give an index file, or --uri and --collection for a Milvus collection")
    from .faiss import side_file

    if side_file(path).exists() or Path(path).suffix == ".faiss":
        from .faiss import load_faiss

        return load_faiss(path)
    from ..index_file import load_index

    return load_index(path)


__all__ = ["canonical_range", "canonical_topk", "open_index"]
