"""Multi-index hashing gives exactly the linear scan's results (same tie order), through tables,
the scanned tail of incremental adds, and the cost-based fallback."""
import numpy as np
import pytest

from dhash.errors import DHashError
from dhash.search.index import LinearIndex, MIHIndex, available_kernels
from test_search import assert_knn, assert_range, random_codes, ref_knn, ref_range


def clustered_codes(rng, n, bits, centres, p=1 / 16):
    """Each code = a random centre XOR a mask whose bits are 1 with probability p."""
    picks = centres[rng.integers(0, len(centres), n)]
    return np.packbits(picks ^ (rng.random((n, bits)) < p), axis=1, bitorder="little")


def dataset(bits, n=6000, nq=40, seed=0):
    rng = np.random.default_rng(seed + bits)
    centres = rng.random((max(2, n // 100), bits)) < 0.5
    db = clustered_codes(rng, n, bits, centres)
    db[100:160] = db[3]  # duplicates
    q = clustered_codes(rng, nq, bits, centres)
    q[:4] = db[:4]
    return db, q


@pytest.mark.parametrize("bits", [12, 36, 64, 100, 128, 256])
def test_mih_equals_linear(bits):
    db, q = dataset(bits)
    mih = MIHIndex(bits, fallback=False)
    mih.add(db)
    assert mih.substrings >= 1
    for k in (1, 10, 300):
        assert_knn(mih.search(q, k), ref_knn(q, db, k, bits))
        assert mih.last_stats["mih_queries"] == len(q) and mih.last_stats["scanned_queries"] == 0
        assert mih.last_stats["lookups"] > 0
    for radius in (0, 2, bits // 6):
        assert_range(mih.range_search(q, radius), ref_range(q, db, radius))


@pytest.mark.parametrize("substrings", [2, 3, 5, 8])
def test_given_substrings(substrings):
    db, q = dataset(64, seed=substrings)
    mih = MIHIndex(64, substrings, fallback=False)
    mih.add(db)
    assert mih.substrings == substrings
    assert_knn(mih.search(q, 20, kernel="portable"), ref_knn(q, db, 20, 64))
    assert_range(mih.range_search(q, 5, threads=1), ref_range(q, db, 5))


def test_incremental_add_tail_and_rebuild():
    db, q = dataset(64, n=12_000)
    mih = MIHIndex(64, fallback=False)
    sizes = [3000, 5, 500, 2000, 4495, 2000]  # tables built, tail scanned, tables rebuilt
    start = 0
    for size in sizes:
        mih.add(db[start:start + size])
        start += size
        part = db[:start]
        assert_knn(mih.search(q, 15), ref_knn(q, part, 15, 64))
        assert_range(mih.range_search(q, 3), ref_range(q, part, 3))
    np.testing.assert_array_equal(mih.codes(), db)


def test_k_beyond_n_and_empty():
    mih = MIHIndex(32)
    d, i = mih.search(np.zeros((2, 4), np.uint8), 3)
    assert (i == -1).all() and (d == 33).all()
    db, q = dataset(32, n=5000)
    mih.add(db)
    assert_knn(mih.search(q, 6000), ref_knn(q, db, 6000, 32))


@pytest.mark.parametrize("kernel", available_kernels())
def test_every_kernel(kernel):
    db, q = dataset(100, seed=9)
    mih = MIHIndex(100, fallback=False)
    mih.add(db)
    assert_knn(mih.search(q, 12, kernel=kernel, threads=2), ref_knn(q, db, 12, 100))


def linear_search(db, q, k):
    index = LinearIndex(db.shape[1] * 8)
    index.add(db)
    return index.search(q, k)


def test_fallback_scans_uniform_codes_and_probes_clustered():
    rng = np.random.default_rng(1)
    uniform = random_codes(rng, 60_000, 64)
    mih = MIHIndex(64)
    mih.add(uniform)
    q = random_codes(rng, 200, 64)
    assert_knn(mih.search(q, 100), linear_search(uniform, q, 100))
    assert mih.last_stats["scanned_queries"] >= 190  # hashing would be slower: scanned
    db, q = dataset(64, n=200_000, nq=200)
    mih = MIHIndex(64)
    mih.add(db)
    assert_knn(mih.search(q, 10), linear_search(db, q, 10))
    assert mih.last_stats["mih_queries"] >= 190  # near neighbours: hashing pays


@pytest.mark.parametrize("bits, substrings, message", [
    (64, 0, "substrings: expected an integer >= 1"),
    (64, 1, "expected 2..64"),
    (64, 65, "expected 2..64"),
])
def test_bad_substrings(bits, substrings, message):
    with pytest.raises(DHashError, match=message):
        MIHIndex(bits, substrings)
