"""fashion-mnist-mosaic: 2 × 2 mosaics of real Fashion-MNIST images with the union of their labels."""
from __future__ import annotations

import numpy as np

from dhash.learn.data import load_source


def test_mosaics_are_built_from_their_own_subset_with_the_union_of_labels():
    base, mosaic = load_source("fashion-mnist"), load_source("fashion-mnist-mosaic")
    assert mosaic.images.shape == (70000, 28, 28) and np.array_equal(mosaic.subset, base.subset)
    assert mosaic.multi_label and mosaic.classes == base.classes
    counts = mosaic.labels.sum(axis=1)
    assert counts.min() >= 1 and counts.max() <= 4
    small = base.images.reshape(-1, 14, 2, 14, 2).mean(axis=(2, 4)).round().astype(np.uint8)
    for i in (0, 59999, 60000, 69999):  # the top-left tile of item i is image i of the same subset
        assert np.array_equal(mosaic.images[i, :14, :14], small[i])
        assert mosaic.labels[i, base.labels[i].argmax()] == 1
    # every tile comes from the same subset: each test mosaic's four tiles match some test image
    test_tiles = {small[j].tobytes(): base.labels[j].argmax() for j in range(60000, 70000)}
    item = mosaic.images[65000]
    tiles = [item[r:r + 14, c:c + 14].tobytes() for r in (0, 14) for c in (0, 14)]
    assert all(t in test_tiles for t in tiles)
    assert set(np.flatnonzero(mosaic.labels[65000])) == {test_tiles[t] for t in tiles}
    assert np.array_equal(load_source("fashion-mnist-mosaic").images[:100], mosaic.images[:100])  # fixed, seeded
