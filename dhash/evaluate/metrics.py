"""Retrieval metrics of Hamming ranking: mAP@k, precision/recall within a radius and at k, NDCG@k.

Relevance: a database item is relevant to a query when their labels share at least one class
(single- and multi-label alike); NDCG uses a graded gain, the number of shared labels (or their
cosine). Definitions, formulas and conventions: ``docs/metrics.md``.

Distances come from the compiled core (:func:`dhash.search.hamming_distances`), or with ``device=``
from :mod:`dhash.search.torch_search` on a GPU, one block of queries at a time so that no queries × database matrix is ever held whole; the per-query work
runs in the numba kernels of :mod:`dhash.ap_kernels`.
"""
from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from .ap_kernels import block_metrics, place_buffer
from ..search.codes import CodeFile, check_bits, check_codes, read_code_file
from ..errors import DHashError
from ..search.index import hamming_distances

TIES = ("stable", "average")
NORMALIZERS = ("retrieved", "min")
GAINS = ("shared", "cosine")
# Queries go through in blocks, one per worker thread: BLOCK_BYTES of distances, but at least
# MIN_ROWS queries (each distance call rebuilds the database layout) unless that passes MAX_BLOCK_BYTES.
BLOCK_BYTES = 2 << 20
MIN_ROWS = 64
MAX_BLOCK_BYTES = 64 << 20
CURVE_POINTS = 64  # precision@k curve: about this many k, log-spaced over 1..N

RELEVANCE = "relevant = shares at least one label with the query"
EMPTY_RULE = "a query that retrieves nothing (or has no relevant item) scores 0, and still counts"


def pack_labels(labels: Any, classes: int | None = None, where: str = "labels") -> np.ndarray:
    """Labels as uint64 words, bit c of row i set when item i has label c.

    ``labels``: N × C multi-hot (any dtype, nonzero = present) or a 1-D array of N class indices
    (then ``classes`` gives C, default max + 1).
    """
    arr = np.asarray(labels)
    if arr.ndim == 1:
        if arr.size and (not np.issubdtype(arr.dtype, np.integer) or arr.min() < 0):
            raise DHashError(f"{where}: 1-D labels must be non-negative class indices")
        width = int(classes if classes is not None else (arr.max() + 1 if arr.size else 1))
        hot = np.zeros((len(arr), width), dtype=bool)
        hot[np.arange(len(arr)), arr] = True
        arr = hot
    elif arr.ndim != 2:
        raise DHashError(f"{where}: expected N x C multi-hot labels or N class indices, got shape {arr.shape}")
    packed = np.packbits(arr != 0, axis=1, bitorder="little")
    words = -(-packed.shape[1] // 8) or 1
    out = np.zeros((len(packed), words * 8), dtype=np.uint8)
    out[:, : packed.shape[1]] = packed
    return out.view("<u8").astype(np.uint64, copy=False)


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _check_choice(value: str, choices: Sequence[str], name: str) -> str:
    if value not in choices:
        raise DHashError(f"{name} must be one of {', '.join(choices)}; got {value!r}")
    return value


def _cutoff(k: int | str, n: int, name: str) -> int:
    """A cut-off k (an integer >= 1, or "all") as a number of items, capped at the database size."""
    if k == "all":
        return max(n, 1)
    if not _is_int(k) or k < 1:
        raise DHashError(f"{name}: expected a positive integer or 'all', got {k!r}")
    return int(min(k, max(n, 1)))


def _check_threads(threads: int | None) -> int:
    if threads is None:
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    if not _is_int(threads) or threads < 1:
        raise DHashError(f"threads: expected an integer >= 1, got {threads!r}")
    return int(threads)


def _ordered_map(fn: Callable[[int], Any], items: Sequence[int], workers: int) -> Iterator[Any]:
    """``map(fn, items)`` on ``workers`` threads, in order, with at most 2 × workers results pending."""
    if workers == 1:
        yield from map(fn, items)
        return
    with ThreadPoolExecutor(workers) as pool:
        pending: deque[Future] = deque()
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) >= 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


@dataclass
class _Block:
    """Per-query kernel outputs for queries ``start .. start + len(ap) - 1``."""

    start: int
    ap: np.ndarray  # nb × len(map_ks)
    hits: np.ndarray  # nb × len(hit_ks), (expected) relevant items in the top k
    ndcg: np.ndarray  # nb × len(ndcg_ks)
    n: np.ndarray  # nb × (bits+1): database items at each distance
    r: np.ndarray  # nb × (bits+1): relevant items at each distance


def _scan(
    query_codes: np.ndarray,
    db_codes: np.ndarray,
    bits: int,
    qlab: np.ndarray,
    dblab: np.ndarray,
    *,
    ties: str,
    normalizer: str,
    gain: str = "shared",
    map_ks: Sequence[int] = (),
    hit_ks: Sequence[int] = (),
    ndcg_ks: Sequence[int] = (),
    full: bool = True,
    threads: int | None = None,
    progress: bool = False,
    device: str | None = None,
) -> Iterator[_Block]:
    """Run the kernels over blocks of queries; every k must lie in 1..N. ``full=False``: see
    :func:`dhash.ap_kernels.block_metrics` (only the AP is right then). ``device``: see
    :func:`evaluate_codes`."""
    nq, n_db = len(query_codes), len(db_codes)
    average = _check_choice(ties, TIES, "ties") == "average"
    norm_min = _check_choice(normalizer, NORMALIZERS, "normalizer") == "min"
    cosine = _check_choice(gain, GAINS, "gain") == "cosine"
    map_ks, hit_ks, ndcg_ks = (np.asarray(ks, dtype=np.int64).reshape(-1) for ks in (map_ks, hit_ks, ndcg_ks))
    if average:
        harmonic = np.concatenate(([0.0], np.cumsum(1.0 / np.arange(1, n_db + 1))))
    else:
        harmonic = np.zeros(1)
    top = int(ndcg_ks.max()) if ndcg_ks.size else 0
    discount = np.concatenate(([0.0], np.cumsum(1.0 / np.log2(np.arange(2, top + 2)))))
    qcount = _label_counts(qlab) if ndcg_ks.size else np.zeros(len(qlab), np.int64)
    dbcount = _label_counts(dblab) if ndcg_ks.size else np.zeros(1, np.int64)
    workers = _check_threads(threads)
    per_row = 2 * max(n_db, 1)  # bytes of distances per query
    rows = max(BLOCK_BYTES // per_row, min(MIN_ROWS, MAX_BLOCK_BYTES // per_row), 1)
    rows = min(rows, -(-nq // workers))
    if device is None:
        def distances(q: np.ndarray) -> np.ndarray:
            return hamming_distances(q, db_codes, bits, threads=1)
    else:
        from ..search.torch_search import TorchIndex

        distances = TorchIndex(db_codes, bits, device).distances

    def run(start: int) -> _Block:
        stop = min(start + rows, nq)
        nb = stop - start
        dist = distances(query_codes[start:stop])
        block = _Block(
            start,
            np.zeros((nb, map_ks.size)),
            np.zeros((nb, hit_ks.size)),
            np.zeros((nb, ndcg_ks.size)),
            np.zeros((nb, bits + 1), dtype=np.int64),
            np.zeros((nb, bits + 1), dtype=np.int64),
        )
        block_metrics(
            dist, qlab[start:stop], dblab, qcount[start:stop], dbcount, average, norm_min, cosine, full,
            map_ks, hit_ks, ndcg_ks, harmonic, discount, place_buffer(n_db, not average),
            block.ap, block.hits, block.ndcg, block.n, block.r,
        )  # fmt: skip
        return block

    blocks = _ordered_map(run, range(0, nq, rows), workers)
    if not progress:
        yield from blocks
        return
    from rich.console import Console
    from rich.progress import Progress

    with Progress(transient=True, console=Console(stderr=True)) as bar:
        task = bar.add_task("evaluating", total=nq)
        for block in blocks:
            yield block
            bar.advance(task, len(block.ap))


def _label_counts(words: np.ndarray) -> np.ndarray:
    """Number of labels in each row of packed label words."""
    as_bytes = words.view(np.uint8).reshape(len(words), -1)
    return np.unpackbits(as_bytes, axis=1).sum(axis=1, dtype=np.int64)


def _check_inputs(query_codes, db_codes, query_labels, db_labels, bits) -> tuple:
    bits = check_bits(bits)
    query_codes = check_codes(query_codes, bits, "query codes")
    db_codes = check_codes(db_codes, bits, "database codes")
    ql, dl = np.asarray(query_labels), np.asarray(db_labels)
    classes = None
    if ql.ndim == 1 and dl.ndim == 1 and ql.size + dl.size:
        classes = int(max(ql.max(initial=0), dl.max(initial=0))) + 1
    qlab = pack_labels(ql, classes, "query labels")
    dblab = pack_labels(dl, classes, "database labels")
    if len(qlab) != len(query_codes) or len(dblab) != len(db_codes):
        raise DHashError(
            f"labels: {len(qlab)} query / {len(dblab)} database label rows for "
            f"{len(query_codes)} / {len(db_codes)} codes"
        )
    if ql.ndim == 2 and dl.ndim == 2 and ql.shape[1] != dl.shape[1]:
        raise DHashError(f"labels: queries have {ql.shape[1]} classes but the database has {dl.shape[1]}")
    if qlab.shape[1] != dblab.shape[1]:
        raise DHashError("labels: query and database labels must both be multi-hot or both class indices")
    return query_codes, db_codes, qlab, dblab, bits


def mean_average_precision(
    query_codes: np.ndarray,
    db_codes: np.ndarray,
    query_labels: np.ndarray,
    db_labels: np.ndarray,
    bits: int,
    top_k: int | None = None,
    ties: str = "stable",
    normalizer: str = "retrieved",
    threads: int | None = None,
) -> float:
    """Mean average precision of Hamming ranking (mAP@k; ``top_k=None`` means the whole database).

    Parameters
    ----------
    query_codes, db_codes : packed uint8 codes (``nq × ceil(bits/8)``, ``N × ceil(bits/8)``).
    query_labels, db_labels : multi-hot ``nq × C`` / ``N × C`` (or 1-D class indices).
    bits : code length.
    top_k : rank cut-off k; values above N mean N.
    ties : ``"stable"`` (ties ranked by database index) or ``"average"`` (exact expected AP over
        all orderings of tied items, McSherry & Najork 2008).
    normalizer : ``"retrieved"`` (AP divided by the relevant items in the top k; the deep-hashing
        convention) or ``"min"`` (divided by min(#relevant in the database, k)).
    threads : worker threads (default: all).

    Returns
    -------
    The mean over all queries; a query with no relevant item in its top k scores 0.
    """
    query_codes, db_codes, qlab, dblab, bits = _check_inputs(query_codes, db_codes, query_labels, db_labels, bits)
    if not len(query_codes) or not len(db_codes):
        raise DHashError("mean_average_precision: no query or no database codes")
    k = _cutoff("all" if top_k is None else top_k, len(db_codes), "top_k")
    total = 0.0
    for block in _scan(query_codes, db_codes, bits, qlab, dblab, ties=ties, normalizer=normalizer,
                       map_ks=[k], full=normalizer == "min", threads=threads):  # fmt: skip
        total += block.ap.sum()
    return total / len(query_codes)


def _source(obj: CodeFile | str | os.PathLike, role: str) -> tuple[CodeFile, str]:
    if isinstance(obj, CodeFile):
        return obj, role
    return read_code_file(obj), str(obj)


def _parse_cutoffs(values: Any, name: str) -> list[int | str]:
    values = [values] if isinstance(values, (int, str, np.integer)) else list(values)
    out: list[int | str] = []
    for v in values:
        v = "all" if v == "all" else v
        _cutoff(v, 1, name)  # validates
        if v not in out:
            out.append(v if v == "all" else int(v))
    return out


def curve_ks(n_db: int, points: int = CURVE_POINTS) -> np.ndarray:
    """The k of the precision@k curve: about ``points`` log-spaced integers from 1 to ``n_db``."""
    return np.unique(np.geomspace(1, max(n_db, 1), points).round().astype(np.int64))


def _check_pair(qf: CodeFile, qname: str, dbf: CodeFile, dbname: str) -> None:
    for cf, name in ((qf, qname), (dbf, dbname)):
        if cf.labels is None:
            raise DHashError(f"{name}: no labels; evaluation needs labelled query and database codes")
        if not len(cf):
            raise DHashError(f"{name}: holds no codes")
    if qf.bits != dbf.bits:
        raise DHashError(f"{qname}: {qf.bits}-bit codes, but {dbname} holds {dbf.bits}-bit codes")
    if qf.labels.shape[1] != dbf.labels.shape[1]:
        raise DHashError(f"{qname}: labels have {qf.labels.shape[1]} classes, but {dbname} has {dbf.labels.shape[1]}")


class _Sums:
    """Sums over queries of the per-query metrics (divided by the number of queries at the end)."""

    def __init__(self, n_map: int, hit_ks: np.ndarray, n_ndcg: int, bits: int) -> None:
        self.hit_ks = hit_ks
        self.ap, self.ndcg = np.zeros(n_map), np.zeros(n_ndcg)
        self.precision, self.recall = np.zeros(len(hit_ks)), np.zeros(len(hit_ks))
        self.p_radius, self.r_radius, self.retrieved = np.zeros(bits + 1), np.zeros(bits + 1), np.zeros(bits + 1)
        self.no_relevant = 0

    def add(self, b: _Block) -> None:
        total_rel = b.r.sum(axis=1)[:, None]
        self.no_relevant += int(np.count_nonzero(total_rel == 0))
        self.ap += b.ap.sum(axis=0)
        self.ndcg += b.ndcg.sum(axis=0)
        self.precision += (b.hits / self.hit_ks).sum(axis=0)  # every k here is already <= N
        self.recall += _ratio(b.hits, total_rel).sum(axis=0)
        cum_n, cum_r = b.n.cumsum(axis=1), b.r.cumsum(axis=1)  # within radius 0, 1, ..., bits
        self.p_radius += _ratio(cum_r, cum_n).sum(axis=0)
        self.r_radius += _ratio(cum_r, total_rel).sum(axis=0)
        self.retrieved += cum_n.sum(axis=0)


def evaluate_codes(
    queries: CodeFile | str | os.PathLike,
    database: CodeFile | str | os.PathLike,
    *,
    map_at: int | str | Sequence[int | str] = ("all",),
    precision_radius: int = 2,
    precision_at: int | Sequence[int] = (100, 500, 1000),
    ndcg_at: int | Sequence[int] | None = None,
    ties: str = "stable",
    normalizer: str = "retrieved",
    gain: str = "shared",
    curves: bool = False,
    threads: int | None = None,
    progress: bool = False,
    device: str | None = None,
) -> dict[str, Any]:
    """All retrieval metrics of labelled query codes against labelled database codes.

    ``queries`` / ``database`` are code files (paths or :class:`CodeFile`). ``map_at``: cut-offs
    (integers or "all"); ``precision_radius``: r of P@H<=r and R@H<=r; ``precision_at``: k of
    precision@k and recall@k; ``ndcg_at``: k of NDCG@k (default 100 for multi-label data, none
    for single-label); ``gain``: NDCG gain, "shared" (number of shared labels) or "cosine";
    ``device``: compute the Hamming distances with :mod:`dhash.search.torch_search` on this torch
    device ("cuda", "cuda:1", "cpu"; the per-query metrics stay on the CPU), None: the compiled core.

    Returns a flat dict: ``map@K``, ``p@h<=R``, ``r@h<=R``, ``precision@K``, ``recall@K``,
    ``ndcg@K``, then ``queries``, ``database``, ``bits``, ``ties``, ``normalizer``, ``relevance``,
    ``empty_retrieval``, ``multi_label``, ``queries_without_relevant`` (and ``gain``). With
    ``curves=True`` also ``curves``: ``{"radius": {radius, precision, recall, retrieved},
    "topk": {k, precision, recall}}`` (means over queries; see docs/metrics.md).
    """
    qf, qname = _source(queries, "queries")
    dbf, dbname = _source(database, "database")
    _check_pair(qf, qname, dbf, dbname)
    bits, nq, n_db = qf.bits, len(qf), len(dbf)
    multi_label = bool(qf.labels.sum(axis=1).max() > 1 or dbf.labels.sum(axis=1).max() > 1)
    map_at = _parse_cutoffs(map_at, "map_at")
    precision_at = _parse_cutoffs(precision_at, "precision_at")
    ndcg_at = _parse_cutoffs(ndcg_at if ndcg_at is not None else ([100] if multi_label else []), "ndcg_at")
    if not _is_int(precision_radius) or precision_radius < 0:
        raise DHashError(f"precision_radius: expected an integer >= 0, got {precision_radius!r}")
    prec_ks = [_cutoff(k, n_db, "precision_at") for k in precision_at]
    hit_ks = np.unique(np.concatenate([prec_ks, curve_ks(n_db) if curves else []]).astype(np.int64))

    sums = _Sums(len(map_at), hit_ks, len(ndcg_at), bits)
    for block in _scan(
        qf.codes, dbf.codes, bits, pack_labels(qf.labels), pack_labels(dbf.labels), ties=ties, normalizer=normalizer,
        gain=gain, map_ks=[_cutoff(k, n_db, "map_at") for k in map_at], hit_ks=hit_ks,
        ndcg_ks=[_cutoff(k, n_db, "ndcg_at") for k in ndcg_at], threads=threads, progress=progress, device=device,
    ):  # fmt: skip
        sums.add(block)

    radius = min(int(precision_radius), bits)
    at = np.searchsorted(hit_ks, prec_ks)
    out: dict[str, Any] = {f"map@{k}": v / nq for k, v in zip(map_at, sums.ap)}
    out[f"p@h<={precision_radius}"] = sums.p_radius[radius] / nq
    out[f"r@h<={precision_radius}"] = sums.r_radius[radius] / nq
    out.update({f"precision@{k}": sums.precision[i] / nq for k, i in zip(precision_at, at)})
    out.update({f"recall@{k}": sums.recall[i] / nq for k, i in zip(precision_at, at)})
    out.update({f"ndcg@{k}": v / nq for k, v in zip(ndcg_at, sums.ndcg)})
    out = {key: float(v) for key, v in out.items()}
    out.update(queries=nq, database=n_db, bits=bits, ties=ties, normalizer=normalizer, relevance=RELEVANCE,
               empty_retrieval=EMPTY_RULE, multi_label=multi_label, queries_without_relevant=sums.no_relevant)
    if ndcg_at:
        out["gain"] = gain
    if curves:
        grid = curve_ks(n_db)
        at = np.searchsorted(hit_ks, grid)
        out["curves"] = {
            "radius": {"radius": list(range(bits + 1)), "precision": (sums.p_radius / nq).tolist(),
                       "recall": (sums.r_radius / nq).tolist(), "retrieved": (sums.retrieved / nq).tolist()},
            "topk": {"k": grid.tolist(), "precision": (sums.precision[at] / nq).tolist(),
                     "recall": (sums.recall[at] / nq).tolist()},
        }  # fmt: skip
    return out


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den, 0 where den is 0."""
    num, den = np.broadcast_arrays(np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64))
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)
