"""``dhash evaluate``: JSON, CSV and table output, curves, --compare, --model, and one-line errors."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from dhash import CodeFile, pack_codes, write_code_file
from dhash.cli.main import main
from dhash.evaluate.metrics import evaluate_codes
from dhash.search.codes import read_code_file


def dhash(*args, code: int = 0) -> str:
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == code, (result.output, result.exception)
    return result.output


def dhash_json(*args):
    """Run with --format json; parse stdout (progress and "wrote ..." notes go to stderr)."""
    result = CliRunner().invoke(main, [str(a) for a in (*args, "--format", "json")])
    assert result.exit_code == 0, (result.output, result.exception)
    return json.loads(result.stdout)


def one_line_error(*args) -> str:
    out = dhash(*args, code=1)
    errors = [line for line in out.splitlines() if line.startswith("Error: ")]
    assert "Traceback" not in out and len(errors) == 1 and out.strip().endswith(errors[0]), out
    return errors[0]


def code_files(folder: Path, name: str, flip: float, seed: int = 0) -> tuple[Path, Path]:
    rng = np.random.default_rng(seed)
    centres = rng.random((5, 16)) - 0.5
    paths = []
    for part, n in (("q", 40), ("db", 400)):
        y = rng.integers(0, 5, n)
        codes = pack_codes(centres[y] * np.where(rng.random((n, 16)) < flip, -1, 1))
        paths.append(write_code_file(folder / f"{name}_{part}.h5", CodeFile(codes, 16, np.eye(5, dtype=np.uint8)[y])))
    return paths[0], paths[1]


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("codes")
    q, db = code_files(root, "a", 0.1)
    q2, db2 = code_files(root, "b", 0.3, seed=1)
    unlabelled = write_code_file(root / "unlabelled.h5", CodeFile(np.zeros((3, 2), np.uint8), 16))
    short = write_code_file(root / "short.h5", CodeFile(np.zeros((3, 1), np.uint8), 8, np.eye(5, dtype=np.uint8)[:3]))
    return dict(q=q, db=db, q2=q2, db2=db2, unlabelled=unlabelled, short=short, root=root)


def test_json_is_the_evaluate_codes_dict(files):
    got = dhash_json("evaluate", "--queries", files["q"], "--database", files["db"], "--map-at", "100,all",
                     "--precision-at", "10,50", "--ties", "average")  # fmt: skip
    expected = evaluate_codes(files["q"], files["db"], map_at=[100, "all"], precision_at=[10, 50], ties="average")
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert got[key] == (pytest.approx(value, abs=1e-15) if isinstance(value, float) else value), key
    assert (got["queries"], got["database"], got["bits"], got["ties"]) == (40, 400, 16, "average")
    assert {"map@100", "map@all", "p@h<=2", "precision@10", "recall@50", "normalizer", "empty_retrieval"} <= set(got)


def test_table_output(files):
    out = dhash("evaluate", "-q", files["q"], "-d", files["db"], "--map-at", "5000", "--normalizer", "min")
    value = evaluate_codes(files["q"], files["db"], map_at=5000, normalizer="min")["map@5000"]
    assert "map@5000" in out and f"{value:.4f}" in out and "precision@1000" in out
    assert "ties=stable, mAP normaliser=min" in out


def test_curves_and_compare(files, tmp_path):
    figs = tmp_path / "figs"
    runs = dhash_json("evaluate", "--compare", f"A={files['q']},{files['db']}", f"B={files['q2']},{files['db2']}",
                      "--curves", figs)["runs"]  # fmt: skip
    assert list(runs) == ["A", "B"] and runs["A"]["map@all"] > runs["B"]["map@all"]
    assert sorted(p.name for p in figs.iterdir()) == [
        "pr_hamming.png", "precision_at_k.png", "precision_radius.png", "radius.csv", "topk.csv"]  # fmt: skip
    assert all(p.stat().st_size > 1000 for p in figs.glob("*.png"))
    assert (figs / "radius.csv").read_text().count("\nB,") == 17  # radii 0..16
    # --queries/--database is the first entry; RUN names default to the query file's stem
    table = dhash("evaluate", "-q", files["q"], "-d", files["db"], "--compare", f"{files['q2']},{files['db2']}")
    assert "comparison" in table and "a_q" in table and "b_q" in table


def test_usage_and_input_errors(files, tmp_path):
    q, db = files["q"], files["db"]
    assert "no labels" in one_line_error("evaluate", "-q", q, "-d", files["unlabelled"])
    assert "8-bit" in one_line_error("evaluate", "-q", q, "-d", files["short"])
    error = one_line_error("evaluate", "-q", q, "-d", tmp_path / "missing.h5")
    assert "missing.h5: no such file" in error
    assert "no such model file" in one_line_error("evaluate", "--model", tmp_path / "nothing")
    for args in (["-q", q], ["-q", q, "-d", db, "extra"], ["--compare"], [], ["-q", q, "-d", db, "--map-at", "0"],
                 ["-q", q, "-d", db, "--ties", "random"], ["-q", q, "-d", db, "--model", "m.pt"]):  # fmt: skip
        assert "Traceback" not in dhash("evaluate", *args, code=2)


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """LSH on the pixels of 32 tiny synthetic images in two class folders (trained in seconds)."""
    root = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    for c, name in enumerate(("dark", "light")):
        (root / name).mkdir()
        for k in range(16):
            pixels = np.clip(rng.normal(90 + 70 * c, 40, (12, 12)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / name / f"{k:02d}.png")
    out = tmp_path_factory.mktemp("runs") / "lsh8"
    dhash("train", "--data", root, "--method", "lsh", "--bits", "8", "--backbone", "pixels", "--protocol", "per-class",
          "--queries-per-class", "4", "--train-per-class", "6", "--threads", "1", "-o", out)  # fmt: skip
    return out


def test_model_encodes_the_run_splits(run, files):
    from dhash.learn.encode import encode_run_splits

    got = dhash_json("evaluate", "--model", run / "model.pt", "--device", "cpu")
    expected = evaluate_codes(*encode_run_splits(run / "model.pt", device="cpu"))
    assert (got["queries"], got["database"], got["bits"]) == (8, 24, 8)
    assert got["map@all"] == pytest.approx(expected["map@all"])
    runs = dhash_json("evaluate", "--compare", run, f"{files['q']},{files['db']}")["runs"]
    assert list(runs) == ["lsh8", "a_q"] and runs["lsh8"]["map@all"] == pytest.approx(expected["map@all"])


def test_formats_and_the_old_json_flag(files, tmp_path):
    args = ["evaluate", "--compare", f"A={files['q']},{files['db']}", f"B={files['q2']},{files['db2']}"]
    runs = dhash_json(*args)["runs"]
    assert json.loads(dhash(*args, "--json")) == {"runs": runs}  # the deprecated spelling still works
    assert not [line for line in dhash("evaluate", "--help").splitlines() if line.strip().startswith("--json")]
    dhash(*args, "-o", tmp_path / "cmp.csv")  # the format follows the extension
    rows = list(csv.DictReader((tmp_path / "cmp.csv").open()))
    assert [r["run"] for r in rows] == ["A", "B"]
    assert [float(r["map@all"]) for r in rows] == pytest.approx([runs["A"]["map@all"], runs["B"]["map@all"]], abs=1e-12)
    assert [int(r["queries"]) for r in rows] == [40, 40]
    assert "Error: --json means --format json" in dhash(*args, "--json", "--format", "csv", code=2)
    dhash(*args, "--format", "table", "-o", tmp_path / "cmp.json")
    assert "comparison" in (tmp_path / "cmp.json").read_text()
    assert "refusing to overwrite an input" in one_line_error(*args, "-o", files["q"])


def test_model_takes_a_run_folder_in_every_command(run, tmp_path):
    data = json.loads((run / "config.json").read_text())["data"]
    for model in (run, run / "model.pt"):
        dhash("encode", data, "--model", model, "--split", "database", "-o", tmp_path / f"{model.name}.h5")
    by_folder, by_file = read_code_file(tmp_path / f"{run.name}.h5"), read_code_file(tmp_path / "model.pt.h5")
    assert np.array_equal(by_folder.codes, by_file.codes) and by_folder.ids == by_file.ids
    assert dhash_json("evaluate", "--model", run)["map@all"] == dhash_json("evaluate", "--model", run / "model.pt")["map@all"]
    dhash("index", tmp_path / "model.pt.h5", "-o", tmp_path / "db.index.h5")
    image = by_file.ids[0]
    hits = [json.loads(dhash("query", tmp_path / "db.index.h5", "--image", image, "--model", model, "-k", "1",
                             "--format", "json")) for model in (run, run / "model.pt")]
    assert hits[0] == hits[1] and hits[0][0]["distance"] == 0
