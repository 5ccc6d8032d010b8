"""Shared by the engine tests: code sets (random with duplicates, ITQ-trained on Fashion-MNIST) and
the comparison of an engine's results with dhash's own exact search."""
from pathlib import Path

import numpy as np
import pytest

from dhash.search.index import LinearIndex
from test_search import random_codes, ref_distances

BITS = (12, 32, 64, 100)
FASHION = Path("/usr/share/datasets/fashion-mnist")


def random_set(bits, n=600, nq=20, seed=0):
    """Biased random codes with duplicate rows; some queries are database codes."""
    rng = np.random.default_rng(seed + bits)
    db = random_codes(rng, n, bits, p=0.3)
    dup = n // 10
    db[n // 2:n // 2 + dup] = db[:dup]  # duplicates
    q = random_codes(rng, nq, bits, p=0.3)
    q[:5] = db[:5]
    return db, q


def trained_sets(n=3000, nq=50):
    """{bits: (database, queries)} of ITQ codes fitted on Fashion-MNIST pixels (many ties)."""
    if not (FASHION / "train-images-idx3-ubyte.gz").exists():
        pytest.skip("Fashion-MNIST is not installed (Debian package dataset-fashion-mnist)")
    import torch

    from dhash.learn.data.idx import load_idx_dataset
    from dhash.learn.methods.classic import ITQ
    from dhash.search.codes import pack_codes

    src = load_idx_dataset("fashion-mnist", FASHION)
    x = src.images[:n + nq].reshape(n + nq, -1).astype(np.float32) / 255
    out = {}
    for bits in BITS:
        method = ITQ(bits, 10)
        method.fit(x[:n], src.labels[:n], seed=0)
        codes = pack_codes(method.project(torch.from_numpy(x)))
        out[bits] = codes[:n], codes[n:]
    return out


def exact(db, q, bits, k):
    ix = LinearIndex(bits)
    ix.add(db)
    return ix.search(q, k)


def assert_same_up_to_ties(got, want, q, db):
    """Same distances; same ids below each query's k-th distance; at it, any ids with that distance."""
    (gd, gi), (wd, wi) = got, want
    np.testing.assert_array_equal(gd, wd)
    np.testing.assert_array_equal(gi < 0, wi < 0)
    true = ref_distances(q, db)
    for row in range(len(q)):
        kth = wd[row][wi[row] >= 0].max(initial=-1)
        below = wd[row] < kth
        assert set(gi[row][below]) == set(wi[row][below]), row
        found = gi[row][gi[row] >= 0]
        assert len(set(found)) == len(found), row
        np.testing.assert_array_equal(true[row, found], gd[row][gi[row] >= 0])


def assert_same_range(got, want):
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)


def assert_matches_dhash(ix, db, q, bits, ks, radii):
    """An engine index over ``db`` answers k-NN (up to ties) and radius searches as dhash's scan."""
    for k in ks:
        assert_same_up_to_ties(ix.search(q, k), exact(db, q, bits, k), q, db)
    ref = LinearIndex(bits)
    ref.add(db)
    for radius in radii:
        assert_same_range(ix.range_search(q, radius), ref.range_search(q, radius))
