"""`dhash index --append/--remove`: the updated index answers like one built from scratch (linear and
MIH), the old file stays intact when an update is refused, and errors are one line."""
import numpy as np
import pytest

from dhash.search.codes import CodeFile, write_code_file
from dhash.search.index_file import load_index
from test_index_cli import run
from test_search import random_codes


@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(3)
    db = random_codes(rng, 5000, 32, p=0.3)
    labels = np.eye(5, dtype=np.uint8)[np.arange(5000) % 5]
    ids = [f"i{n}" for n in range(5000)]
    write_code_file(tmp_path / "a.h5", CodeFile(db[:3000], 32, labels[:3000], ids[:3000]))
    write_code_file(tmp_path / "b.h5", CodeFile(db[3000:], 32, labels[3000:], ids[3000:]))
    write_code_file(tmp_path / "all.h5", CodeFile(db, 32, labels, ids))
    return tmp_path, db, labels, ids, random_codes(rng, 30, 32, p=0.3)


@pytest.mark.parametrize("kind", ["linear", "mih"])
def test_append_then_remove_equals_fresh_build(files, kind):
    tmp, db, labels, ids, q = files
    extra = ["--substrings", "2"] if kind == "mih" else []
    assert run("index", tmp / "a.h5", "-o", tmp / "x.index.h5", "--kind", kind, *extra).exit_code == 0
    result = run("index", "--append", tmp / "b.h5", "-o", tmp / "x.index.h5")
    assert result.exit_code == 0 and "5,000 codes" in result.output, result.output
    assert run("index", tmp / "all.h5", "-o", tmp / "fresh.index.h5", "--kind", kind, *extra).exit_code == 0
    grown, fresh = load_index(tmp / "x.index.h5"), load_index(tmp / "fresh.index.h5")
    assert grown.index.kind == kind and grown.ids == ids and np.array_equal(grown.labels, labels)
    if kind == "mih":
        assert grown.index.substrings == 2
    for a, b in zip(grown.index.search(q, 10), fresh.index.search(q, 10)):
        np.testing.assert_array_equal(a, b)
    gone = ids[10:4000:7]
    (tmp / "gone.txt").write_text("\n".join(gone) + "\n\n")
    result = run("index", "--remove", tmp / "gone.txt", "-o", tmp / "x.index.h5")
    assert result.exit_code == 0 and f"{5000 - len(gone):,} codes" in result.output
    keep = np.array([i not in set(gone) for i in ids])
    shrunk = load_index(tmp / "x.index.h5")
    assert shrunk.ids == [i for i, k in zip(ids, keep) if k] and np.array_equal(shrunk.labels, labels[keep])
    write_code_file(tmp / "kept.h5", CodeFile(db[keep], 32))
    assert run("index", tmp / "kept.h5", "-o", tmp / "kept.index.h5", "--kind", kind, *extra).exit_code == 0
    for a, b in zip(shrunk.index.range_search(q, 6), load_index(tmp / "kept.index.h5").index.range_search(q, 6)):
        np.testing.assert_array_equal(a, b)


def test_refused_updates_leave_the_index_untouched(files):
    tmp, db, labels, ids, q = files
    assert run("index", tmp / "a.h5", "-o", tmp / "x.index.h5").exit_code == 0
    before = (tmp / "x.index.h5").read_bytes()
    write_code_file(tmp / "b24.h5", CodeFile(random_codes(np.random.default_rng(0), 5, 24), 24))
    write_code_file(tmp / "noids.h5", CodeFile(db[:5], 32, labels[:5]))
    (tmp / "unknown.txt").write_text("i1\nnot-there\n")
    cases = [
        (["--append", tmp / "b24.h5"], "holds 24-bit codes but"),
        (["--append", tmp / "a.h5"], "3,000 ids are already in"),
        (["--append", tmp / "noids.h5"], "both need ids or neither"),
        (["--remove", tmp / "unknown.txt"], "1 ids are not in"),
        (["--remove", tmp / "missing.txt"], "missing.txt: no such file"),
    ]
    for args, message in cases:
        result = run("index", *args, "-o", tmp / "x.index.h5")
        assert result.exit_code == 1 and message in result.output, result.output
        assert result.output.count("\n") == 1
    assert (tmp / "x.index.h5").read_bytes() == before
    assert sorted(p.name for p in tmp.iterdir() if p.name.startswith(".")) == []  # no temporary left
    result = run("index", tmp / "a.h5", "--append", tmp / "b.h5", "-o", tmp / "x.index.h5")
    assert result.exit_code == 2 and "give no CODES" in result.output
