"""mAP of Hamming ranking: dhash (compiled distances + counting sort + numba) against plain NumPy.

The NumPy baseline is the straightforward implementation: distances from a matrix product of ±1
codes, then ``argsort(kind="stable")`` per query and AP over the top k. It is slow, so it runs on
a subset of the queries and its time is extrapolated to all of them (the table says so); dhash
runs on all queries, and on the same subset to check that the values agree.

    .venv/bin/python benchmarks/bench_evaluate.py               # both cases of issue 5
    .venv/bin/python benchmarks/bench_evaluate.py --threads 2 --subset 200
    .venv/bin/python benchmarks/bench_evaluate.py --scale 0.1   # a quick smaller run
"""
from __future__ import annotations

import argparse
import time

import numpy as np
from rich.console import Console
from rich.table import Table

from dhash.search.codes import codes_to_signs, pack_codes
from dhash.evaluate.metrics import mean_average_precision

CASES = [  # (queries, database, bits, top_k) — top_k None means mAP@all
    (5_000, 200_000, 64, 5_000),
    (10_000, 60_000, 32, None),
]


def synthetic(nq: int, n: int, bits: int, classes: int = 10, flip: float = 0.25, seed: int = 0):
    """Single-label codes: each class a random centre code, each bit flipped with probability ``flip``."""
    rng = np.random.default_rng(seed)
    centres = rng.random((classes, bits)) < 0.5

    def draw(m: int) -> tuple[np.ndarray, np.ndarray]:
        y = rng.integers(0, classes, m)
        return pack_codes(centres[y] ^ (rng.random((m, bits)) < flip)), np.eye(classes, dtype=np.uint8)[y]

    return (*draw(nq), *draw(n))


def numpy_map(q, ql, db, dbl, bits: int, top_k: int | None, chunk: int = 64) -> float:
    """The baseline: ±1 matrix product for distances, a stable argsort per query, AP over the top k."""
    k = len(db) if top_k is None else min(top_k, len(db))
    qs, ds = codes_to_signs(q, bits), codes_to_signs(db, bits)
    aps = []
    for start in range(0, len(q), chunk):
        dist = 0.5 * (bits - qs[start : start + chunk] @ ds.T)
        for i, row in enumerate(dist):
            order = np.argsort(row, kind="stable")[:k]
            rel = (dbl[order] @ ql[start + i]) > 0
            hits = np.cumsum(rel)
            aps.append((hits[rel] / (np.flatnonzero(rel) + 1)).sum() / hits[-1] if hits[-1] else 0.0)
    return float(np.mean(aps))


def timed(fn, *args, **kwargs) -> tuple[float, float, float]:
    """(value, wall seconds, CPU seconds of this process, all threads)."""
    wall, cpu = time.perf_counter(), time.process_time()
    value = fn(*args, **kwargs)
    return value, time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None, help="dhash worker threads (default: all cores)")
    parser.add_argument("--subset", type=int, default=200, help="queries the NumPy baseline runs on")
    parser.add_argument("--scale", type=float, default=1.0, help="scale the sizes (e.g. 0.1 for a quick run)")
    args = parser.parse_args()
    console = Console(width=140)

    q, ql, db, dbl = synthetic(8, 64, 64)  # compile (or load) the numba kernels before timing
    for ties in ("stable", "average"):
        mean_average_precision(q, db, ql, dbl, 64, top_k=10, ties=ties)

    table = Table(title="mAP of Hamming ranking: dhash vs NumPy (argsort per query)")
    for col in ("case", "NumPy s", "dhash s", "speed-up", "CPU s NumPy / dhash", "average-ties s",
                "mAP stable / average", "agree"):  # fmt: skip
        table.add_column(col, justify="right")
    for nq, n, bits, top_k in CASES:
        nq, n = max(1, int(nq * args.scale)), max(1, int(n * args.scale))
        k = top_k if top_k is None else max(1, int(top_k * args.scale))
        q, ql, db, dbl = synthetic(nq, n, bits, seed=bits)
        sub = min(args.subset, nq)
        ref_sub, t_ref, c_ref = timed(numpy_map, q[:sub], ql[:sub], db, dbl, bits, k)
        ours_sub = mean_average_precision(q[:sub], db, ql[:sub], dbl, bits, top_k=k, threads=args.threads)
        ours, t_ours, c_ours = timed(mean_average_precision, q, db, ql, dbl, bits, top_k=k, threads=args.threads)
        avg, t_avg, _ = timed(mean_average_precision, q, db, ql, dbl, bits, top_k=k, ties="average",
                              threads=args.threads)  # fmt: skip
        t_numpy, c_numpy = t_ref * nq / sub, c_ref * nq / sub
        agree = abs(ref_sub - ours_sub) < 1e-9
        table.add_row(
            f"mAP@{'all' if k is None else k}, {nq:,} × {n:,}, {bits} bits",
            f"{t_numpy:.1f}{'*' if sub < nq else ''}",
            f"{t_ours:.2f}",
            f"{t_numpy / t_ours:.0f}×",
            f"{c_numpy:.1f} / {c_ours:.2f} ({c_numpy / c_ours:.0f}×)",
            f"{t_avg:.2f}",
            f"{ours:.4f} / {avg:.4f}",
            f"{'yes' if agree else 'NO'} (|Δ| = {abs(ref_sub - ours_sub):.0e})",
        )
    console.print(table)
    console.print(f"* NumPy times measured on the first {args.subset} queries and scaled to all queries; "
                  "'agree' compares NumPy and dhash (stable ties) on those queries. CPU s: process CPU time "
                  "over all threads (less sensitive than wall time to other load on the machine). "
                  f"dhash threads: {args.threads or 'all cores'}.")  # fmt: skip


if __name__ == "__main__":
    main()
