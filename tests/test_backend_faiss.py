"""faiss binary indexes behind dhash: exactness of flat against dhash's search (random and trained
codes, 12/32/64/100 bits, duplicates, k > N), the approximate kinds, export/query on the command line,
and one-line errors. Real faiss, skipped only when the faiss extra is not installed."""
import json

import numpy as np
import pytest

pytest.importorskip("faiss")

from dhash.backends.faiss import FaissIndex, export_faiss, load_faiss, side_file  # noqa: E402
from dhash.errors import DHashError  # noqa: E402
from dhash.search.codes import CodeFile, write_code_file  # noqa: E402
from engine_checks import BITS, assert_matches_dhash, exact, random_set, trained_sets  # noqa: E402
from test_index_cli import run  # noqa: E402
from test_search import ref_distances  # noqa: E402


def flat(db, bits):
    ix = FaissIndex(bits, "flat")
    ix.add(db)
    return ix


@pytest.mark.parametrize("bits", BITS)
def test_flat_matches_dhash_on_random_codes(bits):
    db, q = random_set(bits)
    assert_matches_dhash(flat(db, bits), db, q, bits, (1, 10, len(db) + 5), (0, bits // 4))


def test_flat_matches_dhash_on_trained_codes():
    for bits, (db, q) in trained_sets().items():
        assert_matches_dhash(flat(db, bits), db, q, bits, (10, 100), (bits // 8,))


@pytest.mark.parametrize("kind", ["multihash", "hnsw"])
def test_approximate_kinds_return_true_distances(kind):
    db, q = random_set(64, n=2000, nq=30)
    ix = FaissIndex(64, kind, n_hint=len(db))
    ix.add(db)
    d, i = ix.search(q, 10)
    true = ref_distances(q, db)
    found = i >= 0
    np.testing.assert_array_equal(np.take_along_axis(true, np.where(found, i, 0), 1)[found], d[found])
    assert np.all(d[:5, 0] == 0)  # queries that are database codes find themselves
    assert np.all(np.diff(d, axis=1) >= 0)
    if kind == "hnsw":
        with pytest.raises(DHashError, match="no radius search"):
            ix.range_search(q, 2)


@pytest.mark.parametrize("kind", ["flat", "multihash", "hnsw"])
def test_export_writes_index_and_side_file_and_query_reads_them(tmp_path, kind):
    db, q = random_set(100, n=400, nq=6)
    labels = np.eye(3, dtype=np.uint8)[np.arange(400) % 3]
    write_code_file(tmp_path / "db.h5", CodeFile(db, 100, labels, [f"img/{i}" for i in range(400)], {"method": "x"}))
    write_code_file(tmp_path / "q.h5", CodeFile(q, 100))
    out = tmp_path / "db.faiss"
    result = run("export", tmp_path / "db.h5", "--to", "faiss", "-o", out, "--faiss-index", kind)
    assert result.exit_code == 0, result.output
    assert side_file(out).exists() and sorted(p.name for p in tmp_path.iterdir()) == [
        "db.faiss", "db.faiss.h5", "db.h5", "q.h5"]
    loaded = load_faiss(out)
    assert loaded.index.kind == kind and loaded.index.ntotal == 400 and loaded.ids[7] == "img/7"
    assert loaded.attrs["source_method"] == "x" and np.array_equal(loaded.labels, labels)
    result = run("query", out, "--codes", tmp_path / "q.h5", "-k", "5", "--format", "json")
    assert result.exit_code == 0, result.output
    hits = json.loads(result.output)
    assert len(hits) == 30 and set(hits[0]) == {"query", "rank", "index", "id", "distance"}
    true = ref_distances(q, db)
    assert all(h["distance"] == true[h["query"], h["index"]] and h["id"] == f"img/{h['index']}" for h in hits)
    if kind == "flat":
        d, _ = exact(db, q, 100, 5)
        assert [h["distance"] for h in hits] == d.ravel().tolist()


def test_faiss_file_errors_are_one_line(tmp_path):
    db, _ = random_set(32, n=50)
    write_code_file(tmp_path / "db.h5", CodeFile(db, 32))
    write_code_file(tmp_path / "q12.h5", CodeFile(random_set(12, n=10)[0], 12))
    export_faiss(CodeFile(db, 32), tmp_path / "db.faiss")
    assert load_faiss(tmp_path / "db.faiss").ids is None  # ids are optional for faiss
    result = run("query", tmp_path / "db.faiss", "--codes", tmp_path / "q12.h5", "-k", "3")
    assert result.exit_code == 1 and "gives 12-bit codes" in result.output and "32-bit" in result.output
    result = run("export", tmp_path / "db.h5", "--to", "faiss", "-o", tmp_path / "db.h5")
    assert result.exit_code == 1 and "refusing to overwrite an input" in result.output
    result = run("export", tmp_path / "db.h5", "--to", "faiss")
    assert result.exit_code == 2 and "needs -o" in result.output
    (tmp_path / "other.faiss").write_bytes((tmp_path / "db.faiss").read_bytes()[:-8])
    result = run("query", tmp_path / "other.faiss", "--codes", tmp_path / "q12.h5", "-k", "3")
    assert result.exit_code == 1 and "no side file other.faiss.h5" in result.output
    side_file(tmp_path / "other.faiss").write_bytes(side_file(tmp_path / "db.faiss").read_bytes())
    result = run("query", tmp_path / "other.faiss", "--codes", tmp_path / "q12.h5", "-k", "3")
    assert result.exit_code == 1 and "files from different exports" in result.output
    assert result.output.count("\n") == 1
