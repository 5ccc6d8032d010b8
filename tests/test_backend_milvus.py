"""Milvus behind dhash, on a real Milvus Lite instance (one file per module): export, exact search
against dhash's (random and trained codes, 12/32/64/100 bits, duplicates, k > N), label filters,
resumed exports, and one-line errors. Skipped only when the milvus extra is not installed."""
import json
import socket

import numpy as np
import pytest

pytest.importorskip("milvus_lite")

from dhash.backends.milvus import MilvusIndex, connect, export_milvus  # noqa: E402
from dhash.errors import DHashError  # noqa: E402
from dhash.search.codes import CodeFile, write_code_file  # noqa: E402
from engine_checks import BITS, assert_matches_dhash, assert_same_up_to_ties, exact, random_set, trained_sets  # noqa: E402
from test_index_cli import run  # noqa: E402


def ids(n, prefix="c"):
    return [f"{prefix}/{i}" for i in range(n)]


@pytest.fixture(scope="module")
def milvus(tmp_path_factory):
    """A Milvus Lite file holding collections r<bits> (random codes) and t<bits> (ITQ codes)."""
    uri = str(tmp_path_factory.mktemp("milvus") / "codes.db")
    sets = {}
    for bits in BITS:
        sets[f"r{bits}"] = (bits, *random_set(bits, n=500))
    for bits, (db, q) in trained_sets(n=2000, nq=30).items():
        sets[f"t{bits}"] = (bits, db, q)
    for name, (bits, db, _) in sets.items():
        labels = np.eye(4, dtype=np.uint8)[np.arange(len(db)) % 4]
        export_milvus(CodeFile(db, bits, labels, ids(len(db))), uri, name, batch=300)
    return uri, sets


def test_search_matches_dhash(milvus):
    uri, sets = milvus
    for name, (bits, db, q) in sets.items():
        ix = MilvusIndex(uri, name)
        assert ix.bits == bits and ix.ntotal == len(db)
        assert_matches_dhash(ix, db, q, bits, (1, 10, len(db) + 3), (0, bits // 8))
        d, i = ix.search(q[:3], 2)
        assert all(ix.ids[r] == f"c/{r}" for r in i.ravel())


def test_label_filter_searches_only_that_class(milvus):
    uri, sets = milvus
    bits, db, q = sets["r64"]
    rows = np.flatnonzero(np.arange(len(db)) % 4 == 2)
    d, i = MilvusIndex(uri, "r64").search(q, 5, label=2)
    assert set(i.ravel()) <= set(rows)
    want_d, want_i = exact(db[rows], q, bits, 5)
    assert_same_up_to_ties((d, i), (want_d, rows[want_i]), q, db)


def test_cli_export_and_query_match_dhash_index(milvus, tmp_path):
    uri, sets = milvus
    bits, db, q = sets["t32"]
    write_code_file(tmp_path / "db.h5", CodeFile(db, bits, ids=ids(len(db))))
    write_code_file(tmp_path / "q.h5", CodeFile(q, bits))
    result = run("export", tmp_path / "db.h5", "--to", "milvus", "--uri", uri, "--collection", "cli32")
    assert result.exit_code == 0 and f"exported {len(db):,} codes" in result.output, result.output
    result = run("query", "--uri", uri, "--collection", "cli32", "--codes", tmp_path / "q.h5", "-k", "4",
                 "--format", "json")
    assert result.exit_code == 0, result.output
    hits = json.loads(result.output)
    d, _ = exact(db, q, bits, 4)
    assert [h["distance"] for h in hits] == d.ravel().tolist()
    assert all(h["id"] == f"c/{h['index']}" for h in hits)
    result = run("query", "--uri", uri, "--collection", "cli32", "--codes", tmp_path / "q.h5", "--radius", "1",
                 "--format", "csv")
    assert result.exit_code == 0 and result.output.startswith("query,rank,index,id,distance\n")


def test_interrupted_export_completes_with_append_without_duplicates(milvus, tmp_path):
    uri, _ = milvus
    db, q = random_set(24, n=700)
    full = CodeFile(db, 24, ids=ids(700))
    write_code_file(tmp_path / "db.h5", full)
    # what an export stopped after its first two batches leaves behind
    export_milvus(CodeFile(db[:400], 24, ids=ids(400)), uri, "resume", batch=200)
    result = run("export", tmp_path / "db.h5", "--to", "milvus", "--uri", uri, "--collection", "resume")
    assert result.exit_code == 1 and "exists (400 codes); use --append" in result.output
    result = run("export", tmp_path / "db.h5", "--to", "milvus", "--uri", uri, "--collection", "resume", "--append")
    assert result.exit_code == 0 and "exported 300 codes" in result.output and "400 already there" in result.output
    result = run("export", tmp_path / "db.h5", "--to", "milvus", "--uri", uri, "--collection", "resume", "--append")
    assert result.exit_code == 0 and "exported 0 codes" in result.output
    ix = MilvusIndex(uri, "resume")
    assert ix.ntotal == 700
    assert_same_up_to_ties(ix.search(q, 8), exact(db, q, 24, 8), q, db)  # rows = file rows
    assert export_milvus(full, uri, "resume", "overwrite") == (700, 0)


def test_errors_are_one_line(milvus, tmp_path):
    uri, sets = milvus
    bits, db, q = sets["r32"]
    write_code_file(tmp_path / "noids.h5", CodeFile(db, bits))
    write_code_file(tmp_path / "dup.h5", CodeFile(db[:3], bits, ids=["a", "b", "a"]))
    write_code_file(tmp_path / "q12.h5", CodeFile(sets["r12"][2], 12, ids=ids(len(sets["r12"][2]))))
    write_code_file(tmp_path / "q.h5", CodeFile(q, bits))
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cases = [
        (["query", "--uri", uri, "--collection", "nope", "--codes", tmp_path / "q.h5", "-k", "3"],
         "no collection 'nope'"),
        (["query", "--uri", uri, "--collection", "r32", "--codes", tmp_path / "q12.h5", "-k", "3"],
         "gives 12-bit codes but"),
        (["export", tmp_path / "q12.h5", "--to", "milvus", "--uri", uri, "--collection", "r32", "--append"],
         "holds 12-bit codes but collection 'r32'"),
        (["export", tmp_path / "noids.h5", "--to", "milvus", "--uri", uri, "--collection", "x"], "has no ids"),
        (["export", tmp_path / "dup.h5", "--to", "milvus", "--uri", uri, "--collection", "x"],
         "id 'a' occurs more than once"),
        (["query", "--uri", f"http://127.0.0.1:{port}", "--collection", "r32", "--codes", tmp_path / "q.h5",
          "-k", "3"], "cannot reach Milvus"),
        (["query", "--uri", uri, "--collection", "r32", "--codes", tmp_path / "q.h5", "-k", "20000"],
         "Milvus returns 1..16384"),
    ]
    for args, message in cases:
        result = run(*args)
        assert result.exit_code == 1 and message in result.output, (args, result.output)
        assert result.output.count("\n") == 1 and "Traceback" not in result.output
    result = run("query", "--uri", uri, "--codes", tmp_path / "q.h5", "-k", "3")
    assert result.exit_code == 1 and "needs both --uri URI and --collection NAME" in result.output
    client = connect(uri)
    assert not client.has_collection("x")  # nothing half-written by the refused exports
    client.close()
    with pytest.raises(DHashError, match="is a folder"):
        connect(str(tmp_path))
