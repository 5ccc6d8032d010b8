"""`dhash index` and `dhash query` on small files: outputs in every format, and one-line errors."""
import csv
import io
import json

import numpy as np
import pytest
from click.testing import CliRunner

import dhash.learn.encode
from dhash.cli.main import main
from dhash.search.codes import CodeFile, write_code_file
from test_search import random_codes, ref_knn, ref_range


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(0)
    db = random_codes(rng, 300, 24, p=0.3)
    db[200] = db[0]
    q = random_codes(rng, 4, 24, p=0.3)
    q[0] = db[0]
    write_code_file(tmp_path / "db.h5", CodeFile(db, 24, ids=[f"img/{i}.png" for i in range(300)]))
    write_code_file(tmp_path / "noids.h5", CodeFile(db, 24))
    write_code_file(tmp_path / "q.h5", CodeFile(q, 24))
    write_code_file(tmp_path / "q32.h5", CodeFile(random_codes(rng, 2, 32), 32))
    result = run("index", tmp_path / "db.h5", "-o", tmp_path / "db.index.h5")
    assert result.exit_code == 0, result.output
    return tmp_path, db, q


def test_index_reports_and_kinds(files):
    tmp, db, q = files
    result = run("index", tmp / "db.h5", "-o", tmp / "m.h5", "--kind", "mih", "--substrings", "3")
    assert result.exit_code == 0 and "300 codes of 24 bits, mih index with 3 substrings" in result.output
    result = run("query", tmp / "m.h5", "--codes", tmp / "q.h5", "-k", "5", "--format", "json")
    hits = json.loads(result.output)
    assert [h["index"] for h in hits if h["query"] == 0][:2] == [0, 200]


def test_query_json_matches_reference(files):
    tmp, db, q = files
    result = run("query", tmp / "db.index.h5", "--codes", tmp / "q.h5", "-k", "7", "--format", "json", "--threads", "1")
    assert result.exit_code == 0, result.output
    hits = json.loads(result.output)
    d, i = ref_knn(q, db, 7, 24)
    assert len(hits) == 4 * 7
    assert set(hits[0]) == {"query", "rank", "index", "id", "distance"}
    for h in hits:
        assert h["index"] == i[h["query"], h["rank"] - 1] and h["distance"] == d[h["query"], h["rank"] - 1]
        assert h["id"] == f"img/{h['index']}.png"


def test_query_csv_radius_written_atomically(files):
    tmp, db, q = files
    out = tmp / "hits.csv"
    result = run("query", tmp / "db.index.h5", "--codes", tmp / "q.h5", "--radius", "4", "-o", out, "--kernel", "portable")
    assert result.exit_code == 0 and "wrote" in result.output
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    lims, d, i = ref_range(q, db, 4)
    assert [int(r["index"]) for r in rows] == i.tolist()
    assert [int(r["distance"]) for r in rows] == d.tolist()
    assert [int(r["query"]) for r in rows] == np.repeat(np.arange(4), np.diff(lims)).tolist()
    assert not [p for p in tmp.iterdir() if p.name.endswith(".tmp")]


def test_query_table_without_ids_and_k_beyond_n(files):
    tmp, db, q = files
    run("index", tmp / "noids.h5", "-o", tmp / "noids.index.h5", "--kind", "linear")
    result = run("query", tmp / "noids.index.h5", "--codes", tmp / "q.h5", "-k", "400")
    assert result.exit_code == 0
    assert "distance" in result.output and " id " not in result.output
    result = run("query", tmp / "noids.index.h5", "--codes", tmp / "q.h5", "-k", "400", "--format", "json")
    hits = json.loads(result.output)
    assert len(hits) == 4 * 300 and "id" not in hits[0]  # k > N: padding left out


def test_query_images_through_the_encoder(files, monkeypatch):
    tmp, db, q = files
    image = tmp / "cat.png"
    image.write_bytes(b"")
    monkeypatch.setattr(dhash.learn.encode, "encode_image_files", lambda model, paths, device: (db[[5] * len(paths)], 24))
    result = run("query", tmp / "db.index.h5", "--image", image, "--image", image, "--model", tmp / "m.pt", "-k", "1",
                 "--format", "json")
    assert [(h["query"], h["index"], h["distance"]) for h in json.loads(result.output)] == [(0, 5, 0), (1, 5, 0)]
    monkeypatch.setattr(dhash.learn.encode, "encode_image_files", lambda model, paths, device: (db[:1], 48))
    result = run("query", tmp / "db.index.h5", "--image", image, "--model", tmp / "m.pt", "-k", "1")
    assert result.exit_code == 1 and "gives 48-bit codes" in result.output


@pytest.mark.parametrize("args, code, message", [
    (["query", "{t}/db.index.h5", "--codes", "{t}/q32.h5", "-k", "1"], 1, "gives 32-bit codes but"),
    (["query", "{t}/db.h5", "--codes", "{t}/q.h5", "-k", "1"], 1, "not a dhash index file"),
    (["query", "{t}/missing.h5", "--codes", "{t}/q.h5", "-k", "1"], 1, "no such file"),
    (["query", "{t}/db.index.h5", "--codes", "{t}/missing.h5", "-k", "1"], 1, "no such file"),
    (["query", "{t}/db.index.h5", "--codes", "{t}/q.h5", "-k", "1", "-o", "{t}/q.h5"], 1, "refusing to overwrite"),
    (["query", "{t}/db.index.h5", "--codes", "{t}/q.h5"], 2, "exactly one of -k K and --radius R"),
    (["query", "{t}/db.index.h5", "--codes", "{t}/q.h5", "-k", "1", "--radius", "2"], 2, "exactly one of"),
    (["query", "{t}/db.index.h5", "-k", "1"], 2, "either as --codes FILE or as --image"),
    (["query", "{t}/db.index.h5", "--image", "x.png", "-k", "1"], 2, "--image needs --model"),
    (["query", "{t}/db.index.h5", "--codes", "{t}/q.h5", "-k", "0"], 2, "0 is not in the range x>=1"),
    (["query", "{t}/db.index.h5", "--codes", "{t}/q.h5", "-k", "1", "--threads", "0"], 2, "x>=1"),
    (["query", "{t}/db.index.h5", "--codes", "{t}/q.h5", "-k", "1", "--kernel", "sse"], 2, "'sse' is not one of"),
    (["index", "{t}/db.h5", "-o", "{t}/db.h5"], 1, "refusing to overwrite"),
    (["index", "{t}/q.h5", "-o", "{t}/x.h5", "--kind", "linear", "--substrings", "2"], 2, "--substrings applies"),
    (["index", "{t}/q.h5", "-o", "{t}/x.h5", "--kind", "mih", "--substrings", "25"], 1, "substrings: expected 1..24"),
    (["index", "{t}/db.index.h5", "-o", "{t}/x.h5"], 1, "format_version"),
])
def test_errors_are_one_line(files, args, code, message):
    tmp = files[0]
    result = run(*[a.format(t=tmp) for a in args])
    assert result.exit_code == code, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    if code == 1:
        assert result.output.strip().count("\n") == 0


def test_help_has_examples():
    for command in ("index", "query"):
        result = run(command, "--help")
        assert result.exit_code == 0 and f"dhash {command} " in result.output
