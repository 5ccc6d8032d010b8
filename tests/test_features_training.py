"""An HDF5 feature file trains only the hash head (backbone `features`), then encodes."""
import h5py
import numpy as np
from click.testing import CliRunner

from dhash.cli.main import main
from dhash.search.codes import read_code_file
from dhash.learn.data import load_source
from dhash.evaluate.metrics import mean_average_precision


def test_train_and_encode_a_feature_file(tmp_path):
    fm = load_source("fashion-mnist")
    rng = np.random.default_rng(0)
    rows = rng.choice(60000, 2000, replace=False)
    x = fm.images[rows].reshape(len(rows), -1).astype(np.float32) / 255
    with h5py.File(tmp_path / "feats.h5", "w") as f:
        f["features"] = x
        f["labels"] = fm.labels[rows].argmax(1)
    run = CliRunner().invoke(main, ["train", "--data", str(tmp_path / "feats.h5"), "--method", "dpsh", "--bits", "16",
                                    "--epochs", "2", "--threads", "1", "--queries-per-class", "20",
                                    "--train-per-class", "100", "-o", str(tmp_path / "run")])
    assert run.exit_code == 0, run.output
    for split in ("query", "database"):
        res = CliRunner().invoke(main, ["encode", str(tmp_path / "feats.h5"), "--model", str(tmp_path / "run/model.pt"),
                                        "--split", split, "-o", str(tmp_path / f"{split}.h5")])
        assert res.exit_code == 0, res.output
    q, db = read_code_file(tmp_path / "query.h5"), read_code_file(tmp_path / "database.h5")
    assert len(q) == 200 and q.bits == 16
    learned = mean_average_precision(q.codes, db.codes, q.labels, db.labels, 16)
    random = mean_average_precision(rng.integers(0, 256, q.codes.shape, dtype=np.uint8),
                                    rng.integers(0, 256, db.codes.shape, dtype=np.uint8), q.labels, db.labels, 16)
    assert learned > random + 0.15, (learned, random)
