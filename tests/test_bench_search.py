"""benchmarks/bench_search.py runs on a tiny problem: every kernel side by side gives the exact
answer and the chosen kernel is printed; --end-to-end times `dhash query` and prints its ratio to the
search alone. (Timings are not asserted: speed targets live in the benchmark, not in tests.)"""
import csv
import re
import subprocess
import sys
from pathlib import Path

from dhash.search.index import available_kernels

BENCH = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_search.py"
SMALL = ["--n", "3000", "--bits", "64", "--k", "5", "--threads", "1", "--data", "uniform", "--repeat", "1"]


def run(*args):
    proc = subprocess.run([sys.executable, str(BENCH), *SMALL, *args], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def test_every_kernel_side_by_side(tmp_path):
    out = run("--methods", "dhash-linear", "--kernels", "all", "--queries", "40", "-o", str(tmp_path / "r.csv"))
    chosen = re.search(r"kernel chosen: 64 bits: ([\w-]+)", out)  # timed in that process: any it runs
    assert chosen and chosen.group(1) in available_kernels()
    rows = list(csv.DictReader(open(tmp_path / "r.csv")))
    assert [r["method"] for r in rows] == [f"dhash-linear:{k}" for k in available_kernels()]
    assert all(float(r["exact"]) == 1.0 for r in rows)


def test_end_to_end_ratio(tmp_path):
    out = run("--end-to-end", "--queries", "40", "-o", str(tmp_path / "e.csv"))
    assert "dhash query runs at" in out and "of the search's speed" in out
    rows = list(csv.DictReader(open(tmp_path / "e.csv")))
    assert [r["what"] for r in rows] == ["search", "dhash query"]
    assert all(float(r["wall_s"]) > 0 for r in rows) and rows[0]["kernel"] in available_kernels()
