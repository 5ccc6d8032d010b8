"""Linear-scan search against a plain NumPy reference: every kernel, many code lengths and sizes,
ties, k > N, empty databases, radius search, and input validation."""
import numpy as np
import pytest

from dhash.errors import DHashError
from dhash.search import _core
from dhash.search.index import (
    KERNELS, LinearIndex, available_kernels, hamming_distances, selected_kernel,
)

BITS = [1, 12, 36, 64, 100, 128, 256, 1024]


def random_codes(rng, n, bits, p=0.5):
    return np.packbits(rng.random((n, bits)) < p, axis=1, bitorder="little")


def ref_distances(q, db):
    return np.bitwise_count(q[:, None, :] ^ db[None, :, :]).sum(-1, dtype=np.int64)


def ref_knn(q, db, k, bits):
    """k nearest by (distance, index), padded with (bits + 1, -1)."""
    dist = ref_distances(q, db)
    order = np.argsort(dist, axis=1, kind="stable")[:, :k]
    d = np.full((len(q), k), bits + 1, np.int64)
    i = np.full((len(q), k), -1, np.int64)
    d[:, : order.shape[1]] = np.take_along_axis(dist, order, 1)
    i[:, : order.shape[1]] = order
    return d, i


def ref_range(q, db, radius):
    dist = ref_distances(q, db)
    lims, ds, ids = [0], [], []
    for row in dist:
        hit = np.flatnonzero(row <= radius)
        hit = hit[np.argsort(row[hit], kind="stable")]
        ds.append(row[hit])
        ids.append(hit)
        lims.append(lims[-1] + len(hit))
    return np.array(lims), np.concatenate(ds), np.concatenate(ids)


def assert_knn(result, expected):
    (d, i), (rd, ri) = result, expected
    assert d.dtype == np.int32 and i.dtype == np.int64
    np.testing.assert_array_equal(d, rd)
    np.testing.assert_array_equal(i, ri)


def assert_range(result, expected):
    for got, want in zip(result, expected):
        np.testing.assert_array_equal(got, want)


@pytest.fixture(params=available_kernels())
def kernel(request):
    return request.param


def test_kernel_listing_and_default(monkeypatch):
    monkeypatch.delenv("DHASH_KERNEL", raising=False)
    assert "portable" in available_kernels()
    assert set(available_kernels()) <= set(KERNELS)
    assert available_kernels() == [k for k in _core.compiled_kernels() if k in available_kernels()]
    for bits in BITS:  # the timed choice per code length: never the build without POPCNT
        chosen = selected_kernel(bits=bits)
        assert chosen in available_kernels()
        assert chosen != "portable-baseline"
        assert selected_kernel(bits=bits) == chosen  # cached
    for name in available_kernels():
        assert selected_kernel(name, bits=64) == name
    if "avx2" in available_kernels():  # the query-table kernel runs wherever AVX2 does
        assert "avx2-lut" in available_kernels()


@pytest.mark.parametrize("bits", BITS)
def test_distances_match_reference(bits, kernel):
    rng = np.random.default_rng(bits)
    db, q = random_codes(rng, 203, bits), random_codes(rng, 19, bits)
    for threads in (1, 2):
        got = hamming_distances(q, db, bits, threads=threads, kernel=kernel)
        assert got.dtype == np.uint16 and got.shape == (19, 203)
        np.testing.assert_array_equal(got, ref_distances(q, db))


@pytest.mark.parametrize("bits", BITS)
@pytest.mark.parametrize("n", [1, 8, 13, 1000])
def test_knn_matches_reference(bits, n, kernel):
    rng = np.random.default_rng(bits * 7 + n)
    db, q = random_codes(rng, n, bits), random_codes(rng, 21, bits)
    q[:3] = db[:3] if n >= 3 else q[:3]
    index = LinearIndex(bits)
    index.add(db)
    for k in (1, 10, n + 5):
        assert_knn(index.search(q, k, threads=2, kernel=kernel), ref_knn(q, db, k, bits))


def test_knn_large_database_split_over_threads(kernel):
    rng = np.random.default_rng(3)
    bits = 64
    db, q = random_codes(rng, 40_000, bits), random_codes(rng, 30, bits)
    db[25_000:25_100] = db[7]  # the same code far apart: ties across thread shares
    q[0] = db[7]
    index = LinearIndex(bits)
    index.add(db)
    expected = ref_knn(q, db, 150, bits)
    for threads in (1, 2, 3):
        assert_knn(index.search(q, 150, threads=threads, kernel=kernel), expected)


@pytest.mark.parametrize("bits", [32, 64, 128])
def test_large_k_sampled_start_thresholds(bits, kernel):
    """k >= 256 starts each collector at a threshold from a sample of evenly spaced runs of the
    database. Random codes, then codes that fool the sample: copies of the queries at the start
    of every 1/32 of the database (where the runs of one or two shares begin), 3 per query at
    each: more than the sample's k' below distance 1, fewer than k in all, so every query must be
    scanned again from cold; on 1 and 2 threads (two shares)."""
    rng = np.random.default_rng(bits)
    n = 65_536
    db, q = random_codes(rng, n, bits), random_codes(rng, 20, bits)
    index = LinearIndex(bits)
    index.add(db)
    for k in (256, 1000):
        assert_knn(index.search(q, k, threads=1, kernel=kernel), ref_knn(q, db, k, bits))
    fooled = db.copy()
    for start in range(0, n, n // 32):
        fooled[start:start + 3 * len(q)] = np.repeat(q, 3, axis=0)
    index = LinearIndex(bits)
    index.add(fooled)
    for threads in (1, 2):
        for k in (256, 300):
            assert_knn(index.search(q, k, threads=threads, kernel=kernel), ref_knn(q, fooled, k, bits))


@pytest.mark.parametrize("bits", [12, 64, 130])
def test_massive_ties_and_duplicates(bits, kernel):
    rng = np.random.default_rng(bits)
    base = random_codes(rng, 4, bits)
    db = base[rng.integers(0, 4, 5000)]  # 4 distinct codes, ~1250 copies each
    q = np.vstack([base, random_codes(rng, 15, bits)])  # >= 16 queries: avx2-lut's own scan
    index = LinearIndex(bits)
    index.add(db)
    for k in (1, 7, 1300, 4000):
        assert_knn(index.search(q, k, kernel=kernel), ref_knn(q, db, k, bits))
    assert_range(index.range_search(q, 0, kernel=kernel), ref_range(q, db, 0))


def test_low_bits_everything_ties(kernel):
    rng = np.random.default_rng(0)
    db = random_codes(rng, 3000, 1)
    q = random_codes(rng, 20, 1)
    index = LinearIndex(1)
    index.add(db)
    assert_knn(index.search(q, 2000, kernel=kernel), ref_knn(q, db, 2000, 1))


@pytest.mark.parametrize("bits", [12, 64, 256])
def test_range_matches_reference(bits, kernel):
    rng = np.random.default_rng(bits + 1)
    db, q = random_codes(rng, 3000, bits, p=0.1), random_codes(rng, 17, bits, p=0.1)
    q[0] = db[5]
    index = LinearIndex(bits)
    index.add(db)
    for radius in (0, 1, bits // 8, bits):
        lims, d, i = index.range_search(q, radius, threads=2, kernel=kernel)
        assert lims.dtype == np.int64 and d.dtype == np.int32 and i.dtype == np.int64
        assert_range((lims, d, i), ref_range(q, db, radius))
    assert_range(index.range_search(q, bits + 50, kernel=kernel), ref_range(q, db, bits))


def test_empty_database_and_no_queries(kernel):
    index = LinearIndex(36)
    d, i = index.search(np.zeros((3, 5), np.uint8), 4, kernel=kernel)
    assert (i == -1).all() and (d == 37).all() and d.shape == (3, 4)
    lims, d, i = index.range_search(np.zeros((3, 5), np.uint8), 36, kernel=kernel)
    assert lims.tolist() == [0, 0, 0, 0] and len(d) == len(i) == 0
    index.add(np.zeros((2, 5), np.uint8))
    d, i = index.search(np.zeros((0, 5), np.uint8), 4)
    assert d.shape == (0, 4)
    assert hamming_distances(np.zeros((2, 5), np.uint8), np.zeros((0, 5), np.uint8), 36).shape == (2, 0)


def test_incremental_add_and_codes_round_trip():
    rng = np.random.default_rng(5)
    db = random_codes(rng, 1000, 100)
    index = LinearIndex(100)
    for part in np.array_split(db, [3, 17, 600]):
        index.add(part)
    assert index.ntotal == 1000
    np.testing.assert_array_equal(index.codes(), db)
    q = random_codes(rng, 9, 100)
    assert_knn(index.search(q, 25), ref_knn(q, db, 25, 100))


def test_non_contiguous_input_and_single_query():
    rng = np.random.default_rng(6)
    wide = random_codes(rng, 500, 128)
    db = wide[:, :8]  # a strided view: 64-bit codes
    index = LinearIndex(64)
    index.add(db)
    q = wide[::7, 8:16]
    assert_knn(index.search(q, 5), ref_knn(np.ascontiguousarray(q), np.ascontiguousarray(db), 5, 64))
    d, i = index.search(np.ascontiguousarray(db[3]), 1)  # 1-D: one query
    assert i.tolist() == [[3]] and d.tolist() == [[0]]


def test_environment_variable_selects_kernel(monkeypatch):
    monkeypatch.setenv("DHASH_KERNEL", "portable")
    assert selected_kernel() == "portable"
    monkeypatch.setenv("DHASH_KERNEL", "sse9")
    with pytest.raises(DHashError, match="DHASH_KERNEL"):
        LinearIndex(8).search(np.zeros((1, 1), np.uint8), 1)


@pytest.mark.parametrize("call, message", [
    (lambda ix: ix.add(np.zeros((2, 8), np.int64)), "dtype uint8"),
    (lambda ix: ix.add(np.zeros((2, 7), np.uint8)), "need 5 bytes"),
    (lambda ix: ix.add(np.full((2, 5), 255, np.uint8)), "padding bits"),
    (lambda ix: ix.add([[1, 2, 3, 4, 5]]), "NumPy uint8 array"),
    (lambda ix: ix.search(np.zeros((2, 5), np.float32), 1), "queries: expected dtype uint8"),
    (lambda ix: ix.search(np.zeros((2, 4), np.uint8), 1), "queries: 36-bit codes need 5 bytes"),
    (lambda ix: ix.search(np.zeros((2, 5), np.uint8), 0), "k: expected an integer in 1..1073741824"),
    (lambda ix: ix.search(np.zeros((2, 5), np.uint8), 2.5), "k: expected an integer"),
    (lambda ix: ix.search(np.zeros((2, 5), np.uint8), 1, threads=0), "threads"),
    (lambda ix: ix.search(np.zeros((2, 5), np.uint8), 1, kernel="avx9"), "unknown kernel"),
    (lambda ix: ix.range_search(np.zeros((2, 5), np.uint8), -1), "radius"),
    (lambda ix: hamming_distances(np.zeros((2, 5), np.uint8), np.zeros((2, 5), np.uint8), 0), "code length"),
    (lambda ix: hamming_distances(np.zeros((2, 5), np.uint8), np.zeros((2, 6), np.uint8), 36), "database"),
])
def test_bad_inputs_raise_one_line_errors(call, message):
    index = LinearIndex(36)
    index.add(np.zeros((3, 5), np.uint8))
    with pytest.raises(DHashError, match=message) as err:
        call(index)
    assert "\n" not in str(err.value)
