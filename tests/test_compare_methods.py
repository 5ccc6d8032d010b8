"""benchmarks/compare_methods.py runs its cells through the real commands, writes its reports and resumes."""
from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "compare_methods.py"
SMALL = ["--train-arg=--queries-per-class", "--train-arg=5", "--train-arg=--train-per-class", "--train-arg=30"]


def _run(out: Path, bits: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(SCRIPT), "--methods", "lsh,itq", "--bits", bits, "--protocol", "per-class",
           "--out", str(out), *SMALL]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600)


def test_cells_reports_and_resume(tmp_path):
    first = _run(tmp_path, "8")
    assert first.returncode == 0, first.stderr[-2000:]
    rows = list(csv.DictReader((tmp_path / "results.csv").open()))
    assert [(r["method"], r["bits"]) for r in rows] == [("lsh", "8"), ("itq", "8")]
    for r in rows:
        assert 0.0 < float(r["map@all"]) <= 1.0 and 0.0 < float(r["map@1000"]) <= 1.0
        assert float(r["train_seconds"]) > 0
    table = (tmp_path / "results.md").read_text()
    assert "| lsh |" in table and "| itq |" in table and " s |" in table and "ep)" not in table  # no epochs: closed form

    second = _run(tmp_path, "8,16")  # the 8-bit cells are done: only the 16-bit ones run
    assert second.returncode == 0, second.stderr[-2000:]
    assert second.stdout.count("…") == 2, second.stdout
    rows = list(csv.DictReader((tmp_path / "results.csv").open()))
    assert sorted((r["method"], r["bits"]) for r in rows) == [("itq", "16"), ("itq", "8"), ("lsh", "16"), ("lsh", "8")]
    assert (tmp_path / "map_vs_bits_per-class.png").stat().st_size > 0
