"""``dhash encode`` and the encoding API: code files with labels, ids and provenance, the run's saved
split, image files, unreadable images, and one-line errors for bad models and wrong data."""
from __future__ import annotations

import hashlib
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from dhash.cli.main import main
from dhash.search.codes import pack_codes, read_code_file
from dhash.learn.data import load_source
from dhash.learn.encode import encode_image_files, encode_run_splits, load_model


def dhash(*args, code: int = 0) -> str:
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == code, (result.output, result.exception)
    return result.output


def one_line_error(*args) -> str:
    out = dhash(*args, code=1)
    errors = [line for line in out.splitlines() if line.startswith("Error: ")]
    assert "Traceback" not in out and len(errors) == 1 and out.strip().endswith(errors[0]), out
    return errors[0]


@pytest.fixture(scope="module")
def fashion():
    return load_source("fashion-mnist")


@pytest.fixture(scope="module")
def lsh_run(tmp_path_factory) -> Path:
    """LSH on raw pixels, fitted on 500 Fashion-MNIST images (per-class: 20 queries, 50 training items per class)."""
    run = tmp_path_factory.mktemp("runs") / "lsh16"
    dhash("train", "--data", "fashion-mnist", "--method", "lsh", "--bits", "16", "--protocol", "per-class",
          "--queries-per-class", "20", "--train-per-class", "50", "--threads", "1", "-o", run)
    return run


@pytest.fixture(scope="module")
def photos(tmp_path_factory, fashion) -> Path:
    """A folder of 40 PNG files in two class sub-folders (Fashion-MNIST trousers and bags)."""
    root = tmp_path_factory.mktemp("photos")
    for name, c in (("trouser", 1), ("bag", 8)):
        (root / name).mkdir()
        for k, i in enumerate(np.flatnonzero(fashion.labels[:, c])[:20]):
            Image.fromarray(fashion.images[i]).save(root / name / f"{k:02d}.png")
    return root


@pytest.fixture(scope="module")
def photos_run(tmp_path_factory, photos) -> Path:
    run = tmp_path_factory.mktemp("runs") / "photos"
    dhash("train", "--data", photos, "--method", "lsh", "--bits", "8", "--backbone", "pixels", "--protocol", "per-class",
          "--queries-per-class", "5", "--train-per-class", "10", "--threads", "1", "-o", run)
    return run


def test_encode_query_split_with_labels_ids_and_provenance(lsh_run, fashion, tmp_path):
    model = lsh_run / "model.pt"
    out = dhash("encode", "fashion-mnist", "--model", model, "--split", "query", "-o", tmp_path / "q.h5")
    assert "200 codes of 16 bits" in out
    codes = read_code_file(tmp_path / "q.h5")
    record = torch.load(model, weights_only=True)
    query = record["split"]["query"].numpy()
    assert len(query) == 200 and codes.bits == 16 and codes.codes.shape == (200, 2)
    assert np.array_equal(codes.labels, fashion.labels[query])
    assert codes.ids == [fashion.ids[i] for i in query]
    assert codes.attrs["method"] == "lsh" and codes.attrs["split"] == "query" and codes.attrs["dataset"] == "fashion-mnist"
    assert codes.attrs["model_sha256"] == hashlib.sha256(model.read_bytes()).hexdigest()
    assert codes.attrs["dhash_version"] and list(codes.attrs["classes"])[1] == "Trouser"
    # the reference: LSH's hyperplanes on the normalised pixels, computed here from the model file
    spec = record["input_spec"]
    x = (fashion.images[query].reshape(len(query), -1) / 255.0 - spec["mean"][0]) / spec["std"][0]
    state = record["method_state"]
    expected = pack_codes((torch.from_numpy(x).float() - state["mean"]) @ state["projection"])
    assert np.mean(codes.codes == expected) > 0.99  # float rounding may flip a bit sitting on a hyperplane


def test_run_splits_image_files_and_cli_agree(photos_run, photos, tmp_path):
    model = photos_run / "model.pt"
    query, database = encode_run_splits(model)
    assert (len(query), len(database)) == (10, 30) and not set(query.ids) & set(database.ids)
    assert query.attrs["split"] == "query" and database.attrs["split"] == "database"
    assert sorted(query.labels.argmax(1).tolist()) == [0] * 5 + [1] * 5
    dhash("encode", photos, "--model", model, "--split", "query", "-o", tmp_path / "q.h5")
    assert np.array_equal(read_code_file(tmp_path / "q.h5").codes, query.codes)
    codes, bits = encode_image_files(model, query.ids)
    assert bits == 8 and np.array_equal(codes, query.codes)
    encoder = load_model(model, device="cpu")
    assert encoder.bits == 8 and encoder.matches(load_source(str(photos)))


def test_unreadable_images_are_listed_not_fatal_unless_strict(photos_run, photos, tmp_path):
    other = tmp_path / "more"
    (other / "bag").mkdir(parents=True)
    for k in range(3):
        Image.open(photos / "bag" / f"{k:02d}.png").convert("RGB").save(other / "bag" / f"{k}.jpg", quality=95)
    (other / "bag" / "garbage.png").write_bytes(b"not an image at all")
    whole = (other / "bag" / "0.jpg").read_bytes()
    (other / "bag" / "truncated.jpg").write_bytes(whole[: len(whole) // 2])
    model = photos_run / "model.pt"
    out = dhash("encode", other, "--model", model, "-o", tmp_path / "more.h5")
    assert "garbage.png" in out and "truncated.jpg" in out and "3 codes" in out
    codes = read_code_file(tmp_path / "more.h5")
    assert len(codes) == 3 and all("truncated" not in i for i in codes.ids)
    assert any("truncated.jpg" in u for u in codes.attrs["unreadable"])
    err = one_line_error("encode", other, "--model", model, "--strict", "-o", tmp_path / "strict.h5")
    assert "garbage.png" in err or "truncated.jpg" in err
    assert not (tmp_path / "strict.h5").exists()
    err = one_line_error("encode", other, "--model", model, "--split", "query", "-o", tmp_path / "x.h5")
    assert "not the data the model" in err and "--split all" in err


def test_bad_model_files_give_one_line_errors(lsh_run, tmp_path):
    (tmp_path / "junk.pt").write_text("junk")
    assert "junk.pt: not a readable dhash model file" in one_line_error(
        "encode", "fashion-mnist", "--model", tmp_path / "junk.pt", "-o", tmp_path / "c.h5")
    torch.save({"format": "dhash-checkpoint", "epoch": 1}, tmp_path / "ck.pt")
    assert "not a dhash model file" in one_line_error("encode", "fashion-mnist", "--model", tmp_path / "ck.pt", "-o", tmp_path / "c.h5")
    assert "no such model file" in one_line_error("encode", "fashion-mnist", "--model", tmp_path / "none.pt", "-o", tmp_path / "c.h5")
    model = lsh_run / "model.pt"
    assert "refusing to overwrite an input" in one_line_error("encode", "fashion-mnist", "--model", model, "--split", "query", "-o", model)
    record = torch.load(model, weights_only=True)
    record["network"] = {"backbone.nonsense": torch.zeros(1)}
    torch.save(record, tmp_path / "broken.pt")
    assert "cannot rebuild the model" in one_line_error("encode", "fashion-mnist", "--model", tmp_path / "broken.pt", "-o", tmp_path / "c.h5")
    with h5py.File(tmp_path / "f.h5", "w") as f:
        f["features"] = np.zeros((4, 8), np.float32)
    assert "holds feature vectors" in one_line_error("encode", tmp_path / "f.h5", "--model", model, "-o", tmp_path / "c.h5")
