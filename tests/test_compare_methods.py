"""benchmarks/compare_methods.py runs its cells through the real commands, writes its reports and resumes."""
from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "compare_methods.py"
SMALL = ["--train-arg=--queries-per-class", "--train-arg=5", "--train-arg=--train-per-class", "--train-arg=30"]


def _cmd(out: Path, methods: str, bits: str, *extra: str) -> list[str]:
    return [sys.executable, str(SCRIPT), "--methods", methods, "--bits", bits, "--protocol", "per-class",
            "--out", str(out), *SMALL, *extra]  # fmt: skip


def _run(out: Path, bits: str) -> subprocess.CompletedProcess:
    return subprocess.run(_cmd(out, "lsh,itq", bits), capture_output=True, text=True, timeout=600)


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
    assert second.stdout.count(" bits / seed 0 …") == 2, second.stdout
    rows = list(csv.DictReader((tmp_path / "results.csv").open()))
    assert sorted((r["method"], r["bits"]) for r in rows) == [("itq", "16"), ("itq", "8"), ("lsh", "16"), ("lsh", "8")]
    assert (tmp_path / "map_vs_bits_per-class.png").stat().st_size > 0


def test_cell_killed_mid_training_resumes(tmp_path):
    """A cell killed after its first checkpoint continues from it; its time counts the earlier epochs."""
    cmd = _cmd(tmp_path, "dsh", "8", "--train-arg=--epochs", "--train-arg=12")
    run = tmp_path / "runs" / "per-class-dsh-8"
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 300
    while not (run / "checkpoint.pt").exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)  # the whole group: the script and its `dhash train`
    proc.wait()
    assert not (run / "model.pt").exists() and not (tmp_path / "results.csv").exists()
    before = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert 1 <= len(before) < 12

    again = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    epochs = [json.loads(line).get("epoch") for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [e for e in epochs if e is not None] == list(range(1, 13))  # each epoch once: continued, not restarted
    (row,) = csv.DictReader((tmp_path / "results.csv").open())
    assert row["method"] == "dsh" and row["epochs"] == "12" and 0.0 < float(row["map@all"]) <= 1.0
    assert float(row["train_seconds"]) >= sum(r["seconds"] for r in before)


def test_seeds_report_mean_and_std(tmp_path):
    proc = subprocess.run(_cmd(tmp_path, "lsh", "8", "--seeds", "2"), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = list(csv.DictReader((tmp_path / "results.csv").open()))
    assert [(r["method"], r["seed"]) for r in rows] == [("lsh", "0"), ("lsh", "1")]
    assert rows[0]["map@all"] != rows[1]["map@all"]  # a seed changes the hyperplanes and the split
    values = [float(r["map@all"]) for r in rows]
    mean, std = sum(values) / 2, abs(values[0] - values[1]) / 2 ** 0.5  # sample std of two values
    table = (tmp_path / "results.md").read_text()
    assert f"| lsh | {mean:.3f} ± {std:.3f} / " in table and "mean ± std over 2 seeds" in table
