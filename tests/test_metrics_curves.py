"""Curve plots and tables: every PNG and CSV is written, non-empty, and holds every run."""
from __future__ import annotations

import csv

import numpy as np
import pytest
from PIL import Image

from dhash import CodeFile, DHashError, pack_codes
from dhash.evaluate.curves import PLOTS, TABLES, write_curves
from dhash.evaluate.metrics import evaluate_codes


def curves_of(seed: int, flip: float) -> dict:
    rng = np.random.default_rng(seed)
    centres = rng.random((4, 12)) - 0.5
    yq, ydb = rng.integers(0, 4, 30), rng.integers(0, 4, 300)

    def codes(y):
        return pack_codes(centres[y] * np.where(rng.random((len(y), 12)) < flip, -1, 1))

    eye = np.eye(4, dtype=np.uint8)
    res = evaluate_codes(CodeFile(codes(yq), 12, eye[yq]), CodeFile(codes(ydb), 12, eye[ydb]), curves=True)
    return res["curves"]


def test_plots_and_tables_for_several_runs(tmp_path):
    runs = {"good": curves_of(0, 0.1), "poor": curves_of(1, 0.4)}
    written = write_curves(runs, tmp_path / "figs", subtitle="ties=stable")
    assert sorted(p.name for p in written) == sorted([*PLOTS, *TABLES])
    for name in PLOTS:
        path = tmp_path / "figs" / name
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        pixels = np.asarray(Image.open(path).convert("L"))
        assert pixels.shape[0] > 200 and (pixels < 128).mean() > 0.005  # axes, lines and text drawn
    with open(tmp_path / "figs" / "radius.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["run"] for r in rows] == ["good"] * 13 + ["poor"] * 13  # radius 0..12 per run
    assert float(rows[12]["recall"]) == pytest.approx(1.0) and float(rows[12]["retrieved"]) == pytest.approx(300)
    with open(tmp_path / "figs" / "topk.csv") as f:
        rows = list(csv.DictReader(f))
    assert {r["run"] for r in rows} == {"good", "poor"} and rows[0]["k"] == "1"
    good = [float(r["precision"]) for r in rows if r["run"] == "good"][:5]
    poor = [float(r["precision"]) for r in rows if r["run"] == "poor"][:5]
    assert np.mean(good) > np.mean(poor)


def test_bad_output_folder(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(DHashError, match="not a folder"):
        write_curves({"a": curves_of(0, 0.1)}, tmp_path / "file")
    with pytest.raises(DHashError, match="no runs"):
        write_curves({}, tmp_path / "figs")
