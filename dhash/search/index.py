"""Exact Hamming search over packed binary codes: a linear-scan index, a multi-index-hashing index
and streaming search over HDF5 code files larger than memory.

The work is done by the compiled core ``dhash.search._core`` (``csrc/``, see ``docs/search.md``):
portable (POPCNT where the CPU has it) / AVX2 / AVX-512 VPOPCNTDQ / NEON kernels, the fastest for the CPU and code length
chosen at run time (force one with ``kernel=`` or the environment variable ``DHASH_KERNEL``), OpenMP
threads, GIL released. Every function validates its
inputs here and raises :class:`~dhash.errors.DHashError` with a one-line message.

Results are exact and deterministic: neighbours are ordered by distance, ties by database index
ascending, identical for every kernel, thread count and index kind. When ``k`` exceeds the number
of database codes the missing neighbours are padded with index ``-1`` and distance ``bits + 1``.
Radius results use the faiss layout ``(lims, distances, indices)``: the results of query ``i`` are
``distances[lims[i]:lims[i+1]]`` (sorted the same way) and ``indices[...]``.

Reference: M. Norouzi, A. Punjani, D. J. Fleet, "Fast Search in Hamming Space with Multi-Index
Hashing", CVPR 2012 (the MIH index).
"""
from __future__ import annotations

import os
import platform
from collections.abc import Iterator
from typing import Any

import numpy as np

from . import _core
from .codes import check_bits, check_codes, code_file_info, iter_code_blocks
from ..errors import DHashError

KERNELS = ("portable-baseline", "portable", "avx2", "avx2-lut", "avx512", "neon")  # every kernel of any build
MAX_NTOTAL = 2**32 - 2  # indices are stored as uint32 inside the core
MAX_K = 2**30
INDEX_KINDS = ("linear", "mih")


def available_kernels() -> list[str]:
    """Kernels this CPU can run, slowest first (``portable`` is always there)."""
    return list(_core.available_kernels())


def selected_kernel(kernel: str | None = None, bits: int = 64) -> str:
    """The kernel a search of ``bits``-bit codes with ``kernel=`` uses: the given one, else
    ``$DHASH_KERNEL``, else the fastest here for that code length (timed once per process)."""
    return _core.selected_kernel(_check_kernel(kernel), check_bits(bits))


def cpu_model() -> str:
    """The CPU's model name (Linux ``/proc/cpuinfo``), else what :mod:`platform` says."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("model name", "Model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _check_kernel(kernel: str | None) -> str:
    source = "kernel"
    if kernel is None:
        kernel, source = os.environ.get("DHASH_KERNEL") or "", "DHASH_KERNEL"
        if not kernel:
            return ""
    if kernel not in KERNELS:
        raise DHashError(f"{source}: unknown kernel {kernel!r}; choose one of {', '.join(KERNELS)}")
    if kernel not in available_kernels():
        raise DHashError(f"{source}: kernel {kernel!r} is not supported by this CPU (available: "
                         f"{', '.join(available_kernels())})")
    return kernel


def _check_threads(threads: int | None) -> int:
    if threads is None:
        return 0
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 1:
        raise DHashError(f"threads: expected an integer >= 1, got {threads!r}")
    return int(threads)


def _check_int(value: Any, name: str, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low \
            or (high is not None and value > high):
        expected = f">= {low}" if high is None else f"in {low}..{high}"
        raise DHashError(f"{name}: expected an integer {expected}, got {value!r}")
    return int(value)


def _check_queries(queries: Any, bits: int) -> np.ndarray:
    if isinstance(queries, np.ndarray) and queries.ndim == 1:
        queries = queries[None, :]
    return check_codes(queries, bits, "queries")


def default_threads() -> int:
    """Threads a search uses when ``threads=None``: all cores."""
    return int(_core.default_threads())


def hamming_distances(queries: np.ndarray, database: np.ndarray, bits: int, threads: int | None = None,
                      kernel: str | None = None) -> np.ndarray:
    """All Hamming distances between packed ``queries`` (nq × bytes) and ``database`` (N × bytes).

    Returns a ``uint16`` array of shape ``(nq, N)``.
    """
    bits = check_bits(bits)
    queries = _check_queries(queries, bits)
    database = check_codes(database, bits, "database")
    core = _core.LinearCore(bits)
    core.add(database)
    return core.distances(queries, _check_threads(threads), _check_kernel(kernel))


class LinearIndex:
    """Exact search by scanning every code (blocked, multi-threaded, SIMD)."""

    kind = "linear"

    def __init__(self, bits: int) -> None:
        self.bits = check_bits(bits)
        self._core = _core.LinearCore(self.bits)

    @property
    def ntotal(self) -> int:
        """Number of codes in the index."""
        return int(self._core.ntotal)

    def add(self, codes: np.ndarray) -> None:
        """Append packed codes (N × ceil(bits/8) uint8); they get indices ntotal, ntotal+1, ..."""
        codes = check_codes(codes, self.bits)
        if self.ntotal + len(codes) > MAX_NTOTAL:
            raise DHashError(f"codes: an index holds at most {MAX_NTOTAL} codes")
        self._core.add(codes)

    def codes(self) -> np.ndarray:
        """The indexed codes, packed, in index order."""
        return self._core.codes()

    def search(self, queries: np.ndarray, k: int, threads: int | None = None,
               kernel: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Exact k nearest neighbours: ``(distances int32 nq×k, indices int64 nq×k)``."""
        queries, k, threads, kernel = self._check_search(queries, k, threads, kernel)
        return self._core.search(queries, k, threads, kernel)

    def range_search(self, queries: np.ndarray, radius: int, threads: int | None = None,
                     kernel: str | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """All codes within ``radius``: ``(lims int64 nq+1, distances int32, indices int64)``."""
        queries, radius, threads, kernel = self._check_range(queries, radius, threads, kernel)
        return self._core.range_search(queries, radius, threads, kernel)

    def _check_search(self, queries: Any, k: Any, threads: Any, kernel: Any) -> tuple[np.ndarray, int, int, str]:
        return (_check_queries(queries, self.bits), _check_int(k, "k", 1, MAX_K), _check_threads(threads),
                _check_kernel(kernel))

    def _check_range(self, queries: Any, radius: Any, threads: Any, kernel: Any) -> tuple[np.ndarray, int, int, str]:
        radius = min(_check_int(radius, "radius", 0), self.bits)
        return _check_queries(queries, self.bits), radius, _check_threads(threads), _check_kernel(kernel)


class MIHIndex(LinearIndex):
    """Multi-index hashing (Norouzi, Punjani & Fleet, CVPR 2012), exact.

    Codes are split into ``substrings`` contiguous substrings; automatic: round(bits / (log2 N - 4)),
    chosen when the tables are built — substrings about 4 bits shorter than the paper's log2 N,
    which measured fastest here (16-bit substrings for 1M codes of 32, 64 or 128 bits), and at
    least ceil(bits / 32), so that a substring has at most 32 bits. Each substring has a table of
    the codes sorted by its value. A query probes the tables at substring radius 0, 1, 2, ...: by
    the pigeonhole principle, after radius r of substring s every code within m·r + s of the query
    has been seen, which stops the search once the k-th best distance (or the radius) is covered.

    Codes added after the last table build form a tail that is scanned; the tables are rebuilt
    when the tail grows past a quarter of them (``add`` stays cheap on average). Indexes of fewer
    than 4,096 codes have no tables: they are scanned. With ``fallback=True`` (default) a search
    first probes a sample of its queries and scans instead when the estimated MIH cost is not
    clearly lower (uniform random codes, large k); :attr:`last_stats` counts the queries each path
    answered and the bucket lookups / entries of the probes.
    """

    kind = "mih"

    def __init__(self, bits: int, substrings: int | None = None, fallback: bool = True) -> None:
        self.bits = check_bits(bits)
        if substrings is not None:
            substrings = _check_int(substrings, "substrings", 1)
            low = -(-self.bits // 32)
            if not low <= substrings <= self.bits:
                raise DHashError(f"substrings: expected {low}..{self.bits} for {self.bits}-bit codes "
                                 f"(at most 32 bits per substring), got {substrings}")
        self.requested_substrings = substrings
        self.fallback = bool(fallback)
        self.last_stats: dict[str, int] = {}
        self._core = _core.MihCore(self.bits, substrings or 0)

    @property
    def substrings(self) -> int:
        """Substrings of the tables (for an index too small to have tables yet: those it will use)."""
        return int(self._core.substrings or self.requested_substrings
                   or _core.auto_substrings(self.bits, max(self.ntotal, 2)))

    def search(self, queries: np.ndarray, k: int, threads: int | None = None,
               kernel: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        queries, k, threads, kernel = self._check_search(queries, k, threads, kernel)
        dist, idx, self.last_stats = self._core.search(queries, k, threads, kernel, self.fallback)
        return dist, idx

    def range_search(self, queries: np.ndarray, radius: int, threads: int | None = None,
                     kernel: str | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        queries, radius, threads, kernel = self._check_range(queries, radius, threads, kernel)
        lims, dist, idx, self.last_stats = self._core.range_search(queries, radius, threads, kernel, self.fallback)
        return lims, dist, idx


def _merge_topk(dist: np.ndarray, idx: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the k smallest (distance, index) pairs; padding (index -1) sorts last."""
    key = (dist.astype(np.int64) << 40) | (idx & ((1 << 40) - 1))
    order = np.argsort(key, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(dist, order, 1), np.take_along_axis(idx, order, 1)


def _file_queries(path: str | os.PathLike, queries: Any) -> tuple[int, int, np.ndarray]:
    """(bits, N) of a code file and the queries checked against its code length."""
    bits, n = code_file_info(path)
    if isinstance(queries, np.ndarray) and queries.ndim == 2 and queries.dtype == np.uint8 \
            and queries.shape[1] != (bits + 7) // 8:
        raise DHashError(f"{path}: holds {bits}-bit codes ({(bits + 7) // 8} bytes) but the queries have "
                         f"{queries.shape[1]} bytes per code")
    return bits, n, _check_queries(queries, bits)


def _file_blocks(path: str | os.PathLike, n: int, block_rows: int, progress: bool) -> Iterator[tuple[int, np.ndarray]]:
    blocks = iter_code_blocks(path, _check_int(block_rows, "block_rows", 1))
    if not progress:
        yield from blocks
        return
    from rich.progress import Progress

    with Progress(transient=True) as bar:
        task = bar.add_task(f"searching {os.fspath(path)}", total=n)
        for start, codes in blocks:
            yield start, codes
            bar.advance(task, len(codes))


def search_code_file(path: str | os.PathLike, queries: np.ndarray, k: int, threads: int | None = None,
                     kernel: str | None = None, block_rows: int = 1 << 22,
                     progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Exact k-NN over the ``codes`` of an HDF5 code file, read ``block_rows`` codes at a time.

    Memory is bounded by one block plus the results; the answer is identical to
    ``LinearIndex.search`` over the whole file (indices are rows of the file).
    """
    bits, n, queries = _file_queries(path, queries)
    k = _check_int(k, "k", 1, MAX_K)
    _check_threads(threads)  # fail before reading the file
    _check_kernel(kernel)
    dist = np.full((len(queries), k), bits + 1, dtype=np.int32)
    idx = np.full((len(queries), k), -1, dtype=np.int64)
    for start, codes in _file_blocks(path, n, block_rows, progress):
        block = LinearIndex(bits)
        block.add(codes)
        d, i = block.search(queries, k, threads, kernel)
        i[i >= 0] += start
        dist, idx = _merge_topk(np.hstack([dist, d]), np.hstack([idx, i]), k)
    return dist, idx


def range_search_code_file(path: str | os.PathLike, queries: np.ndarray, radius: int,
                           threads: int | None = None, kernel: str | None = None, block_rows: int = 1 << 22,
                           progress: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Radius search over an HDF5 code file, streamed like :func:`search_code_file`."""
    bits, n, queries = _file_queries(path, queries)
    radius = min(_check_int(radius, "radius", 0), bits)
    _check_threads(threads)
    _check_kernel(kernel)
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for start, codes in _file_blocks(path, n, block_rows, progress):
        block = LinearIndex(bits)
        block.add(codes)
        lims, d, i = block.range_search(queries, radius, threads, kernel)
        parts.append((np.repeat(np.arange(len(queries)), np.diff(lims)), d, i + start))
    qid, dist, idx = (np.concatenate([p[j] for p in parts]) if parts else np.zeros(0, t)
                      for j, t in enumerate((np.int64, np.int32, np.int64)))
    order = np.lexsort((idx, dist, qid))
    lims = np.zeros(len(queries) + 1, dtype=np.int64)
    np.cumsum(np.bincount(qid, minlength=len(queries)), out=lims[1:])
    return lims, dist[order], idx[order]
