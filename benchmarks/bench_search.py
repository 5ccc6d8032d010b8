"""Exact Hamming k-NN, side by side: dhash linear scan, dhash MIH, faiss IndexBinaryFlat,
faiss IndexBinaryMultiHash, faiss IndexBinaryHNSW (through ``dhash.backends.faiss``), Milvus Lite
(BIN_FLAT / HAMMING through ``dhash.backends.milvus``; needs ``dhash[milvus]``) and a NumPy
``bitwise_count`` scan.

Data: uniform random codes, or clustered codes (N/100 uniform random centres; every database code
and query is a random centre XOR a mask whose bits are 1 with probability 1/16). 1000 queries.

Each cell is timed best-of ``--repeat`` (wall clock, after a warm-up on the first queries);
slow methods (NumPy, faiss at 10M) time fewer queries so a run stays near ``--budget`` seconds.
"q/s cpu" divides by process CPU time instead of wall time: on a shared machine it shows what the
method does per core it actually got. "× faiss" is the wall-clock ratio to faiss IndexBinaryFlat
at the same cell. "exact" is the share of returned distances equal to the exact ones (faiss
MultiHash is approximate: it only probes buckets within --faiss-nflip bit flips). "recall" is the
share of returned neighbours within the exact k-th distance (ties count as found). "insert/s" is
codes added per second when the index is built (Milvus: batches of 10,000 rows with string ids).
Milvus Lite runs in its own server process with its own threads: --threads does not apply to it.

``--kernels all`` (or a list of kernel names) times the dhash methods once per kernel, side by side
(rows ``dhash-linear:popcnt``, ...); by default they use the kernel dhash chooses (printed first).

``--end-to-end`` times ``dhash query`` instead (a child process, as a user runs it: start-up, reading
the index and query files, searching, CSV formatting and writing included) against the search alone
(``LinearIndex.search`` on the loaded index, same queries, k and threads) for the first --n, --bits,
--k, --threads and --data, and prints the ratio of the two speeds (wall clock and CPU time; best of
--repeat, the two alternating so that a shared machine's load hits both alike).

Examples:
  .venv/bin/python benchmarks/bench_search.py --quick --kernels all
  .venv/bin/python benchmarks/bench_search.py --n 10M --bits 64 --k 10 --threads 2 --data uniform
  .venv/bin/python benchmarks/bench_search.py --end-to-end --n 1M --bits 64 --k 10 --threads 1 --queries 20000
  .venv/bin/python benchmarks/bench_search.py            # the full grid (long: hours on 2 cores)
"""
from __future__ import annotations

import argparse
import csv
import datetime as dt
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from dhash.search import _core
from dhash.search.index import LinearIndex, MIHIndex, available_kernels, cpu_model, selected_kernel

METHODS = ("dhash-linear", "dhash-mih", "faiss-flat", "faiss-mih", "faiss-hnsw", "milvus-lite", "numpy")
RESULTS = Path(__file__).parent / "results"


def parse_n(text: str) -> int:
    text = text.upper()
    scale = {"K": 1_000, "M": 1_000_000}.get(text[-1], 1)
    return int(float(text.rstrip("KM")) * scale)


def random_bytes(rng: np.random.Generator, n: int, width: int) -> np.ndarray:
    return rng.integers(0, 256, (n, width), dtype=np.uint8)


def make_data(kind: str, n: int, bits: int, nq: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(database, queries) packed codes; bits is a multiple of 8 here."""
    rng = np.random.default_rng(seed)
    width = bits // 8
    if kind == "uniform":
        return random_bytes(rng, n, width), random_bytes(rng, nq, width)
    centres = random_bytes(rng, max(1, n // 100), width)

    def draw(m: int) -> np.ndarray:
        out = np.empty((m, width), np.uint8)
        for s in range(0, m, 1 << 20):  # a mask bit is the AND of 4 fair bits: probability 1/16
            e = min(m, s + (1 << 20))
            mask = random_bytes(rng, e - s, width)
            for _ in range(3):
                mask &= random_bytes(rng, e - s, width)
            out[s:e] = centres[rng.integers(0, len(centres), e - s)] ^ mask
        return out

    return draw(n), draw(nq)


def numpy_knn(db: np.ndarray, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Plain NumPy: XOR + bitwise_count per query, argpartition, stable sort of the k best."""
    word = next(t for t in (np.uint64, np.uint32, np.uint16, np.uint8) if db.shape[1] % np.dtype(t).itemsize == 0)
    wide, qw = db.view(word), q.view(word)
    k = min(k, len(db))
    dist = np.empty((len(q), k), np.int32)
    idx = np.empty((len(q), k), np.int64)
    for j in range(len(q)):
        d = np.bitwise_count(wide ^ qw[j]).sum(1, dtype=np.int32)
        part = np.argpartition(d, k - 1)[:k] if k < len(d) else np.arange(len(d))
        order = part[np.lexsort((part, d[part]))]
        dist[j], idx[j] = d[order], order
    return dist, idx


class Runner:
    """Builds each method's index once per data set; search(q, k, threads) -> (D, I)."""

    def __init__(self, db: np.ndarray, bits: int, methods: list[str], nflip: int, workdir: Path) -> None:
        self.db, self.bits, self.build = db, bits, {}
        self.index: dict[str, object] = {}
        for name in methods:
            if name == "numpy":
                continue  # nothing to build
            t = time.perf_counter()
            if name == "dhash-linear":
                self.index[name] = LinearIndex(bits)
                self.index[name].add(db)
            elif name == "dhash-mih":
                self.index[name] = MIHIndex(bits)
                self.index[name].add(db)
            elif name == "faiss-flat":
                import faiss

                self.index[name] = faiss.IndexBinaryFlat(bits)
                self.index[name].add(db)
            elif name == "faiss-mih":
                import faiss

                m = _core.auto_substrings(bits, len(db))
                ix = faiss.IndexBinaryMultiHash(bits, m, bits // m)
                ix.nflip = nflip
                ix.add(db)
                self.index[name] = ix
            elif name == "faiss-hnsw":
                from dhash.backends.faiss import FaissIndex

                self.index[name] = FaissIndex(bits, "hnsw")
                self.index[name].add(db)
            elif name == "milvus-lite":
                from dhash.backends.milvus import MilvusIndex, export_milvus
                from dhash.search.codes import CodeFile

                uri = str(workdir / f"bench-{len(db)}-{bits}.db")
                export_milvus(CodeFile(db, bits, ids=[str(i) for i in range(len(db))]), uri, "bench", "overwrite")
                self.index[name] = MilvusIndex(uri, "bench")
            self.build[name] = time.perf_counter() - t

    def close(self) -> None:
        """Stop the Milvus Lite server, if one was started."""
        if "milvus-lite" in self.index:
            self.index["milvus-lite"].close()

    def search(self, name: str, q: np.ndarray, k: int, threads: int) -> tuple[np.ndarray, np.ndarray]:
        if name.startswith("dhash"):
            method, _, kernel = name.partition(":")
            return self.index[method].search(q, k, threads=threads, kernel=kernel or None)
        if name in ("faiss-hnsw", "milvus-lite"):
            return self.index[name].search(q, k, threads=threads)
        if name.startswith("faiss"):
            import faiss

            faiss.omp_set_num_threads(threads)
            return self.index[name].search(q, k)
        return numpy_knn(self.db, q, k)


def timed(run, q: np.ndarray, repeat: int, budget: float, min_queries: int = 20) -> dict:
    """Warm up on a few queries, pick how many queries fit the budget, then best-of-repeat."""
    t = time.perf_counter()
    run(q[:min_queries])
    per_query = (time.perf_counter() - t) / min_queries
    nq = int(np.clip(budget / max(per_query, 1e-9), min_queries, len(q)))
    wall = cpu = float("inf")
    result = None
    for _ in range(repeat):
        t, c = time.perf_counter(), time.process_time()
        result = run(q[:nq])
        wall, cpu = min(wall, time.perf_counter() - t), min(cpu, time.process_time() - c)
    return {"queries": nq, "wall": wall, "cpu": cpu, "result": result}


def end_to_end(args: argparse.Namespace, console: Console, out: Path) -> None:
    """``dhash query`` (CSV to a file) against the search alone; prints and writes the ratio."""
    from dhash.search.codes import CodeFile, write_code_file
    from dhash.search.index_file import index_code_file, load_index

    n, bits, k, threads, data = parse_n(args.n[0]), args.bits[0], args.k[0], args.threads[0], args.data[0]
    work = Path(tempfile.mkdtemp(prefix="bench_query-"))
    try:
        db, queries = make_data(data, n, bits, args.queries)
        write_code_file(work / "db.h5", CodeFile(db, bits))
        write_code_file(work / "queries.h5", CodeFile(queries, bits))
        index_code_file(work / "db.h5", work / "db.index.h5", kind="linear")
        index = load_index(work / "db.index.h5").index
        kernel = args.kernels[0] if args.kernels not in (["auto"], ["all"]) else None
        env = {**os.environ, **({"DHASH_KERNEL": kernel} if kernel else {})}
        cmd = [str(Path(sys.executable).parent / "dhash"), "query", str(work / "db.index.h5"), "--codes",
               str(work / "queries.h5"), "-k", str(k), "--threads", str(threads), "-o", str(work / "out.csv")]
        index.search(queries[:64], k, threads=threads, kernel=kernel)  # the kernel probe, once
        best = {"search": [np.inf, np.inf], "dhash query": [np.inf, np.inf]}
        for _ in range(args.repeat):
            t, c = time.perf_counter(), time.process_time()
            index.search(queries, k, threads=threads, kernel=kernel)
            wall, cpu = time.perf_counter() - t, time.process_time() - c
            best["search"] = [min(best["search"][0], wall), min(best["search"][1], cpu)]
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            t = time.perf_counter()
            subprocess.run(cmd, check=True, env=env, capture_output=True)
            wall, after = time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
            best["dhash query"] = [min(best["dhash query"][0], wall), min(best["dhash query"][1], cpu)]
    finally:
        shutil.rmtree(work)
    chosen = kernel or selected_kernel(bits=bits)
    table = Table(title=f"dhash query end to end: N={n:,} × {bits} bits, {len(queries):,} {data} queries, k={k}, "
                        f"{threads} thread(s), kernel {chosen}, CSV to a file (load average {os.getloadavg()[0]:.1f})")
    for col in ("what", "wall s", "q/s", "cpu s", "q/s cpu"):
        table.add_column(col, justify="left" if col == "what" else "right")
    rows = []
    for what, (wall, cpu) in best.items():
        table.add_row(what, f"{wall:.2f}", f"{len(queries) / wall:,.0f}", f"{cpu:.2f}", f"{len(queries) / cpu:,.0f}")
        rows.append({"n": n, "bits": bits, "data": data, "threads": threads, "k": k, "queries": len(queries),
                     "kernel": chosen, "what": what, "wall_s": wall, "cpu_s": cpu})
    console.print(table)
    wall_ratio = best["search"][0] / best["dhash query"][0]
    cpu_ratio = best["search"][1] / best["dhash query"][1]
    console.print(f"dhash query runs at {wall_ratio:.0%} of the search's speed (wall clock; CPU time: "
                  f"{cpu_ratio:.0%})", highlight=False)
    with open(out, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    console.print(f"wrote {out}", highlight=False)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", nargs="+", default=["1M", "10M"], help="database sizes (1M, 10M, 250K, ...)")
    ap.add_argument("--bits", nargs="+", type=int, default=[32, 64, 128])
    ap.add_argument("--k", nargs="+", type=int, default=[1, 10, 100, 1000])
    ap.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    ap.add_argument("--data", nargs="+", choices=["uniform", "clustered"], default=["uniform", "clustered"])
    ap.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    ap.add_argument("--kernels", nargs="+", default=["auto"],
                    help="'auto' (dhash's choice), 'all' (every kernel this CPU runs), or kernel names")
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=3, help="timed runs per cell; the best is kept")
    ap.add_argument("--budget", type=float, default=8.0, help="target seconds per timed run of a slow method")
    ap.add_argument("--faiss-nflip", type=int, default=2, help="bit flips probed by faiss IndexBinaryMultiHash")
    ap.add_argument("--quick", action="store_true",
                    help="only the README's target cells: 1M x 64 bits, k 10 and 1000, 1 thread, both data kinds")
    ap.add_argument("--end-to-end", action="store_true",
                    help="time `dhash query` (CSV to a file) against the search alone; see above")
    ap.add_argument("-o", "--output", type=Path, help="CSV file [default: benchmarks/results/bench_search-<time>.csv]")
    args = ap.parse_args()
    if args.quick:
        args.n, args.bits, args.k, args.threads = ["1M"], [64], [10, 1000], [1]

    console = Console(width=150)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = args.output or RESULTS / f"bench_search-{dt.datetime.now():%Y%m%d-%H%M%S}.csv"
    if args.end_to_end:
        console.print(f"machine: {cpu_model()}, {os.cpu_count()} cores; load average at start "
                      f"{os.getloadavg()[0]:.1f}", highlight=False)
        return end_to_end(args, console, out)
    kernels = available_kernels() if args.kernels == ["all"] else [] if args.kernels == ["auto"] else args.kernels
    chosen = ", ".join(f"{b} bits: {selected_kernel(bits=b)}" for b in args.bits)
    machine = f"{cpu_model()}, {os.cpu_count()} cores"
    console.print(f"machine: {machine}; kernel chosen: {chosen}; load average at start {os.getloadavg()[0]:.1f}",
                  highlight=False)
    timed_methods = [f"{m}:{kern}" if kern else m for m in args.methods
                     for kern in (kernels if kernels and m.startswith("dhash") else [""])]
    rows: list[dict] = []
    workdir = Path(tempfile.mkdtemp(prefix="bench_search-"))  # Milvus Lite files
    for n_text in args.n:
        n = parse_n(n_text)
        for bits in args.bits:
            for data in args.data:
                db, queries = make_data(data, n, bits, args.queries)
                runner = Runner(db, bits, args.methods, args.faiss_nflip, workdir)
                for threads in args.threads:
                    for k in args.k:
                        exact = None
                        cell: list[dict] = []
                        for name in timed_methods:
                            r = timed(lambda q: runner.search(name, q, k, threads), queries, args.repeat, args.budget)
                            d = np.asarray(r["result"][0])
                            if exact is None and name.startswith("dhash-linear"):
                                exact = d
                            m = min(len(d), len(exact)) if exact is not None else 0
                            ok = float(np.mean(d[:m] == exact[:m])) if m else float("nan")
                            recall = float(np.mean(d[:m] <= exact[:m, -1:])) if m else float("nan")
                            cell.append({
                                "n": n, "bits": bits, "data": data, "threads": threads, "k": k, "method": name,
                                "qps": r["queries"] / r["wall"], "qps_cpu": r["queries"] * threads / r["cpu"],
                                "queries": r["queries"], "exact": ok, "recall": recall,
                                "build_s": runner.build.get(name, 0.0),
                                "insert_per_s": n / runner.build[name] if runner.build.get(name) else float("nan"),
                                "stats": str(getattr(runner.index.get(name), "last_stats", "")),
                            })
                        base = next((c["qps"] for c in cell if c["method"] == "faiss-flat"), float("nan"))
                        for c in cell:
                            c["x_faiss"] = c["qps"] / base
                            console.print(
                                f"N={n:,} bits={bits} {data} threads={threads} k={k} {c['method']:>12}: "
                                f"{c['qps']:10,.0f} q/s  (cpu {c['qps_cpu']:,.0f})  x faiss {c['x_faiss']:.2f}  "
                                f"exact {c['exact']:.3f}  recall {c['recall']:.3f}  insert/s {c['insert_per_s']:,.0f}  "
                                f"[{c['queries']} queries]", highlight=False)
                        rows.extend(cell)
                runner.close()
                del runner, db
    shutil.rmtree(workdir)
    with open(out, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    table = Table(title=f"Exact Hamming k-NN, queries/s ({machine}; load average {os.getloadavg()[0]:.1f})")
    for col in ("N", "bits", "data", "thr", "k", "method", "q/s", "q/s cpu", "× faiss", "exact", "recall", "insert/s"):
        table.add_column(col, justify="left" if col in ("data", "method") else "right")
    for c in rows:
        table.add_row(f"{c['n']:,}", str(c["bits"]), c["data"], str(c["threads"]), str(c["k"]), c["method"],
                      f"{c['qps']:,.0f}", f"{c['qps_cpu']:,.0f}", f"{c['x_faiss']:.2f}", f"{c['exact']:.3f}",
                      f"{c['recall']:.3f}", f"{c['insert_per_s']:,.0f}")
    console.print(table)
    console.print(f"wrote {out}", highlight=False)


if __name__ == "__main__":
    main()
