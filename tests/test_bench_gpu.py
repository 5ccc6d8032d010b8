"""benchmarks/bench_gpu.py and benchmarks/gpu_check.sh run on a machine without CUDA: CPU rows only,
the search exact, the CUDA tests skipped cleanly."""
import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import CUDA

ROOT = Path(__file__).resolve().parents[1]


def test_benchmark_on_the_cpu(tmp_path):
    out = tmp_path / "bench.csv"
    subprocess.run([sys.executable, ROOT / "benchmarks" / "bench_gpu.py", "--devices", "cpu", "--quick",
                    "--backbones", "small-cnn", "--n", "20K", "--threads", "1", "-o", out],
                   check=True, capture_output=True, text=True)
    rows = list(csv.DictReader(out.open()))
    assert [(r["device"], r["task"]) for r in rows] == [("cpu", "train"), ("cpu", "encode"), ("cpu", "search k=10")]
    assert all(float(r["per_s"]) > 0 for r in rows)
    assert rows[0]["model"] == "small-cnn" and rows[2]["model"] == "20,000 codes × 64 bits" and rows[2]["exact"] == "True"


@pytest.mark.skipif(CUDA, reason="checks the script's CPU-only path")
def test_gpu_check_script_skips_the_cuda_parts(tmp_path):
    env = {**os.environ, "OUT": str(tmp_path), "PYTHON": sys.executable}
    done = subprocess.run(["bash", ROOT / "benchmarks" / "gpu_check.sh"], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bench.log", "bench_gpu.csv", "machine.txt", "tests.log"]
    tests = (tmp_path / "tests.log").read_text()
    assert " skipped" in tests and "passed" not in tests and "failed" not in tests, tests
    assert "CUDA False" in (tmp_path / "machine.txt").read_text()
    assert "search k=10" in (tmp_path / "bench_gpu.csv").read_text()
