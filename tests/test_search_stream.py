"""Streaming search over HDF5 code files equals in-memory search; index files round-trip."""
import h5py
import numpy as np
import pytest

from dhash.search.codes import CodeFile, write_code_file
from dhash.errors import DHashError
from dhash.search.index_file import build_index, index_code_file, load_index, save_index
from dhash.search.index import LinearIndex, MIHIndex, range_search_code_file, search_code_file
from test_search import assert_knn, assert_range, random_codes, ref_knn, ref_range


@pytest.fixture
def code_file(tmp_path):
    rng = np.random.default_rng(0)
    db = random_codes(rng, 5003, 36, p=0.3)
    db[4000:4100] = db[10]  # ties across blocks
    path = tmp_path / "db.h5"
    labels = rng.integers(0, 2, (len(db), 4), dtype=np.uint8)
    write_code_file(path, CodeFile(db, 36, labels=labels, ids=[f"item/{i}" for i in range(len(db))],
                                   attrs={"method": "dha"}))
    q = random_codes(rng, 23, 36, p=0.3)
    q[0] = db[10]
    return path, db, q, labels


@pytest.mark.parametrize("block_rows", [1, 999, 5003, 1 << 20])
def test_streamed_knn_equals_in_memory(code_file, block_rows):
    path, db, q, _ = code_file
    if block_rows == 1:
        db, path = db[:40], _prefix_file(path, 40)
    for k in (1, 10, 150):
        assert_knn(search_code_file(path, q, k, block_rows=block_rows), ref_knn(q, db, k, 36))


@pytest.mark.parametrize("block_rows", [7, 1000, 1 << 20])
def test_streamed_range_equals_in_memory(code_file, block_rows):
    path, db, q, _ = code_file
    for radius in (0, 3, 8):
        assert_range(range_search_code_file(path, q, radius, block_rows=block_rows, threads=1),
                     ref_range(q, db, radius))


def test_streamed_k_beyond_n_and_progress(code_file):
    path, db, q, _ = code_file
    assert_knn(search_code_file(path, q, 6000, block_rows=2048, progress=True), ref_knn(q, db, 6000, 36))


def test_stream_errors(code_file, tmp_path):
    path, db, q, _ = code_file
    with pytest.raises(DHashError, match="holds 36-bit codes"):
        search_code_file(path, np.zeros((2, 8), np.uint8), 3)
    with pytest.raises(DHashError, match="no such file"):
        search_code_file(tmp_path / "missing.h5", q, 3)
    with pytest.raises(DHashError, match="block_rows"):
        search_code_file(path, q, 3, block_rows=0)


def _prefix_file(path, n):
    out = path.with_name(f"prefix{n}.h5")
    with h5py.File(path) as f:
        write_code_file(out, CodeFile(f["codes"][:n], 36))
    return out


@pytest.mark.parametrize("kind", ["linear", "mih", "auto"])
def test_index_file_round_trip(code_file, tmp_path, kind):
    path, db, q, labels = code_file
    out = tmp_path / f"{kind}.index.h5"
    built = index_code_file(path, out, kind, substrings=3 if kind == "mih" else None)
    loaded = load_index(out)
    assert loaded.index.kind == ("linear" if kind == "auto" else kind)  # 5,003 codes: auto is linear
    assert loaded.index.ntotal == len(db) and loaded.index.bits == 36
    np.testing.assert_array_equal(loaded.index.codes(), db)
    np.testing.assert_array_equal(loaded.labels, labels)
    assert loaded.ids[7] == "item/7" and len(loaded.ids) == len(db)
    assert loaded.attrs["source_method"] == "dha" and loaded.attrs["source"] == str(path)
    if kind == "mih":
        assert loaded.index.substrings == built.index.substrings == 3
    assert_knn(loaded.index.search(q, 12), ref_knn(q, db, 12, 36))


def test_save_index_without_metadata_and_errors(tmp_path):
    rng = np.random.default_rng(2)
    db = random_codes(rng, 70_000, 64)
    index = build_index(CodeFile(db, 64), "auto")
    assert isinstance(index, MIHIndex)  # large enough for MIH
    save_index(index, tmp_path / "x.h5")
    loaded = load_index(tmp_path / "x.h5")
    assert loaded.ids is None and loaded.labels is None and loaded.index.kind == "mih"
    with pytest.raises(DHashError, match="refusing to overwrite"):
        save_index(LinearIndex(64), tmp_path / "x.h5", inputs=[tmp_path / "x.h5"])
    with pytest.raises(DHashError, match="expected 0 ids, got 3"):
        save_index(LinearIndex(64), tmp_path / "y.h5", ids=["a", "b", "c"])
    with pytest.raises(DHashError, match="only a mih index"):
        build_index(CodeFile(db[:10], 64), "linear", substrings=2)
    with pytest.raises(DHashError, match="kind"):
        build_index(CodeFile(db[:10], 64), "hnsw")
    (tmp_path / "junk.h5").write_bytes(b"not hdf5")
    with pytest.raises(DHashError, match="not an HDF5 file"):
        load_index(tmp_path / "junk.h5")
    write_code_file(tmp_path / "codes.h5", CodeFile(db[:10], 64))
    with pytest.raises(DHashError, match="not a dhash index file"):
        load_index(tmp_path / "codes.h5")
