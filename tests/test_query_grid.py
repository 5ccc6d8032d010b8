"""`dhash query --first N --grid PNG`: the retrieval picture drawn from the dataset's own images."""
import numpy as np
from click.testing import CliRunner
from PIL import Image

import dhash
from dhash.cli.main import main
from dhash.evaluate.gallery import GREEN, QUERY, RED


def test_grid_of_first_queries(tmp_path):
    rng = np.random.default_rng(0)
    labels = np.eye(3, dtype=np.uint8)[[0, 0, 1, 2, 1]]
    ids = ["train/0", "train/1", "train/2", "train/3", "train/4"]
    codes = dhash.pack_codes(rng.standard_normal((5, 16)))
    dhash.write_code_file(tmp_path / "db.h5", dhash.CodeFile(codes, 16, labels, ids, {"dataset": "fashion-mnist"}))
    q = dhash.CodeFile(codes[[0, 2, 3]], 16, labels[[0, 2, 3]], ["test/0", "test/1", "test/2"], {"dataset": "fashion-mnist"})
    dhash.write_code_file(tmp_path / "q.h5", q)
    runner = CliRunner()
    assert runner.invoke(main, ["index", str(tmp_path / "db.h5"), "-o", str(tmp_path / "ix.h5")]).exit_code == 0
    res = runner.invoke(main, ["query", str(tmp_path / "ix.h5"), "--codes", str(tmp_path / "q.h5"), "-k", "2",
                               "--first", "2", "--format", "json", "--grid", str(tmp_path / "g.png")])
    assert res.exit_code == 0, res.output
    grid = np.asarray(Image.open(tmp_path / "g.png").convert("RGB"))
    size, frame, gap = 84, 4, 10
    cell = size + 2 * frame
    assert grid.shape[0] == 2 * (cell + gap) + gap  # --first 2: two rows
    # query 0 is db item 0 itself (distance 0, label 0): first result framed green
    assert tuple(grid[gap, gap]) == QUERY and tuple(grid[gap, gap + cell + gap]) == GREEN
    # query 1 = db item 2 (label 1); its second result shares no label unless it is item 4
    second = tuple(grid[gap + cell + gap, gap + 2 * (cell + gap)])
    assert second in (GREEN, RED)


def test_grid_needs_ids(tmp_path):
    codes = np.zeros((2, 1), np.uint8)
    dhash.write_code_file(tmp_path / "db.h5", dhash.CodeFile(codes, 8))
    runner = CliRunner()
    runner.invoke(main, ["index", str(tmp_path / "db.h5"), "-o", str(tmp_path / "ix.h5")])
    res = runner.invoke(main, ["query", str(tmp_path / "ix.h5"), "--codes", str(tmp_path / "db.h5"), "-k", "1",
                               "--grid", str(tmp_path / "g.png")])
    assert res.exit_code == 1 and "--grid needs ids" in res.output and not (tmp_path / "g.png").exists()
