"""Protocols: sizes, disjointness and determinism under a seed; split files round trip."""
from __future__ import annotations

import numpy as np
import pytest

from dhash.learn.data import Source, Split, make_split
from dhash.learn.data.source import one_hot
from dhash.errors import DHashError


def single_label(per_class=(30, 25, 40), subset=False) -> Source:
    classes = np.repeat(np.arange(len(per_class)), per_class)
    classes = np.random.default_rng(5).permutation(classes)  # classes interleaved, as in real data
    n = len(classes)
    return Source(
        name="toy",
        images=np.zeros((n, 4, 4), np.uint8),
        paths=None,
        features=None,
        labels=one_hot(classes, len(per_class)),
        classes=[f"c{i}" for i in range(len(per_class))],
        ids=[str(i) for i in range(n)],
        subset=(np.arange(n) % 4 == 0).astype(np.uint8) if subset else None,
    )


def multi_label(n=200, c=5) -> Source:
    labels = (np.random.default_rng(1).random((n, c)) < 0.3).astype(np.uint8)
    return Source("multi", None, [f"{i}.jpg" for i in range(n)], None, labels, [str(i) for i in range(c)],
                  [f"{i}.jpg" for i in range(n)], None)


def check_parts(split: Split, n: int):
    for part in (split.train, split.query, split.database):
        assert part.dtype == np.int64 and (np.diff(part) > 0).all()  # sorted, no repeats
        assert part.min() >= 0 and part.max() < n
    assert not np.intersect1d(split.query, split.database).size
    assert np.isin(split.train, split.database).all()


def test_full_uses_own_split():
    source = single_label(subset=True)
    split = make_split(source, "full", seed=3)
    check_parts(split, len(source))
    np.testing.assert_array_equal(split.query, np.flatnonzero(source.subset == 1))
    np.testing.assert_array_equal(split.train, split.database)
    assert len(split.train) + len(split.query) == len(source) and split.protocol == "full" and split.seed == 3


def test_full_without_subsets_names_working_protocols():
    with pytest.raises(DHashError, match="use per-class or random"):
        make_split(single_label(), "full")
    with pytest.raises(DHashError, match="use random$"):
        make_split(multi_label(), "full")


def test_per_class_sizes_and_disjointness():
    source = single_label()
    split = make_split(source, "per-class", seed=0, queries_per_class=4, train_per_class=10)
    check_parts(split, len(source))
    classes = source.labels.argmax(1)
    assert np.bincount(classes[split.query]).tolist() == [4, 4, 4]
    assert np.bincount(classes[split.train]).tolist() == [10, 10, 10]
    assert len(split.database) == len(source) - 12
    np.testing.assert_array_equal(np.union1d(split.query, split.database), np.arange(len(source)))


def test_per_class_deterministic_under_seed():
    source = single_label()
    a, b, c = (make_split(source, "per-class", seed=s, queries_per_class=4, train_per_class=10) for s in (7, 7, 8))
    for part in ("train", "query", "database"):
        np.testing.assert_array_equal(getattr(a, part), getattr(b, part))
    assert not np.array_equal(a.query, c.query)


def test_per_class_errors():
    with pytest.raises(DHashError, match="class 'c1' has 25 items.*5 queries \\+ 21 training"):
        make_split(single_label(), "per-class", queries_per_class=5, train_per_class=21)
    with pytest.raises(DHashError, match="single-label"):
        make_split(multi_label(), "per-class")
    unlabelled = single_label()
    unlabelled.labels = None
    with pytest.raises(DHashError, match="needs labels"):
        make_split(unlabelled, "per-class")


def test_random_defaults_scale_with_classes():
    source = multi_label()
    split = make_split(source, "random", seed=1, queries_per_class=4, train_per_class=20)
    check_parts(split, len(source))
    assert (len(split.query), len(split.train), len(split.database)) == (20, 100, 180)


def test_random_counts_and_fractions_deterministic():
    source = multi_label()
    split = make_split(source, "random", seed=2, num_queries=0.1, num_train=30)
    check_parts(split, len(source))
    assert (len(split.query), len(split.train), len(split.database)) == (20, 30, 180)
    again = make_split(source, "random", seed=2, num_queries=0.1, num_train=30)
    np.testing.assert_array_equal(split.train, again.train)
    np.testing.assert_array_equal(split.query, again.query)
    half = make_split(source, "random", seed=2, num_queries=50, num_train=0.5)
    assert (len(half.query), len(half.train)) == (50, 75)


def test_random_errors():
    source = multi_label(n=30)
    with pytest.raises(DHashError, match="cannot take 20 queries and 11 training"):
        make_split(source, "random", num_queries=20, num_train=11)
    with pytest.raises(DHashError, match="fraction in \\(0, 1\\)"):
        make_split(source, "random", num_queries=1.5, num_train=3)
    unlabelled = multi_label(n=30)
    unlabelled.labels, unlabelled.classes = None, []
    with pytest.raises(DHashError, match="explicit query and training counts"):
        make_split(unlabelled, "random")
    assert len(make_split(unlabelled, "random", num_queries=5, num_train=5).database) == 25


def test_unknown_protocol():
    with pytest.raises(DHashError, match="choose one of full, per-class, random, unseen"):
        make_split(single_label(), "cifar")


def test_save_load_round_trip(tmp_path):
    source = single_label()
    split = make_split(source, "per-class", seed=11, queries_per_class=3, train_per_class=5)
    path = tmp_path / "run" / "split.npz"
    split.save(path)
    assert [p.name for p in path.parent.iterdir()] == ["split.npz"]  # no temporary file left
    loaded = Split.load(path)
    for part in ("train", "query", "database"):
        np.testing.assert_array_equal(getattr(loaded, part), getattr(split, part))
        assert getattr(loaded, part).dtype == np.int64
    assert (loaded.protocol, loaded.seed, loaded.size) == ("per-class", 11, len(source))
    loaded.check(source)
    with pytest.raises(DHashError, match="has 60 items, but the per-class split was made for 95"):
        loaded.check(single_label(per_class=(20, 20, 20)))


def test_load_bad_file_named(tmp_path):
    bad = tmp_path / "split.npz"
    bad.write_bytes(b"garbage")
    with pytest.raises(DHashError, match="cannot read split file") as err:
        Split.load(bad)
    assert str(bad) in str(err.value)
    np.savez(bad, train=np.arange(3))
    with pytest.raises(DHashError, match="not a dhash split file \\(no query, database, protocol, seed, size\\)"):
        Split.load(bad)
    np.save(tmp_path / "one.npy", np.arange(3))
    with pytest.raises(DHashError, match="not an .npz archive"):
        Split.load(tmp_path / "one.npy")
    with pytest.raises(DHashError, match="cannot read"):
        Split.load(tmp_path / "missing.npz")


@pytest.mark.parametrize("subset", [False, True])
def test_unseen_keeps_query_and_database_classes_out_of_training(subset):
    source = single_label(per_class=(30, 25, 40, 35), subset=subset)
    split = make_split(source, "unseen", seed=4, queries_per_class=5)
    classes = source.labels.argmax(1)
    train_classes, test_classes = set(classes[split.train]), set(classes[split.query]) | set(classes[split.database])
    assert len(train_classes) == 3 and len(test_classes) == 1 and not train_classes & test_classes  # 75 % of 4
    assert set(classes[split.query]) == test_classes and len(split.query) == 5
    unseen = np.flatnonzero(np.isin(classes, list(test_classes)))
    np.testing.assert_array_equal(np.union1d(split.query, split.database), unseen)  # every unseen item is used
    seen = np.isin(classes, list(train_classes)) & ((source.subset == 0) if subset else True)
    np.testing.assert_array_equal(split.train, np.flatnonzero(seen))
    again = make_split(source, "unseen", seed=4, queries_per_class=5)
    assert np.array_equal(again.train, split.train) and np.array_equal(again.query, split.query)
    assert not np.array_equal(make_split(source, "unseen", seed=5, queries_per_class=5).query, split.query)


def test_unseen_rejects_what_it_cannot_split():
    with pytest.raises(DHashError, match="protocol 'unseen' needs single-label data"):
        make_split(multi_label(), "unseen")
    with pytest.raises(DHashError, match="has 25 items; protocol 'unseen' needs more than 30"):
        make_split(single_label(per_class=(30, 25)), "unseen", seed=0, queries_per_class=30)
