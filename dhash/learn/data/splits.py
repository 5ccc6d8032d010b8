"""Evaluation protocols: which items train the network, which are queries, which form the database.

- ``full``: the data set's own split; its training set is both the training set and the database,
  its test set the queries (Fashion-MNIST, MNIST, CIFAR-10, feature files with ``subset``).
- ``per-class``: the CIFAR-10 hashing protocol (single-label data): per class, ``queries_per_class``
  random queries and ``train_per_class`` training items drawn from the rest; the database is every
  item but the queries. Items with no label are never drawn; they stay in the database.
- ``random``: for multi-label data or data without a split: ``num_queries`` random queries and
  ``num_train`` training items drawn from the rest; the database is every item but the queries.
  The defaults, ``queries_per_class × C`` and ``train_per_class × C``, follow the NUS-WIDE
  protocol (2,100 queries and 10,500 training images for its 21 classes).
- ``unseen``: retrieval of classes the network never saw (Sablayrolles et al., "How should we
  evaluate supervised hashing?", ICASSP 2017; single-label data): a seeded 75 % of the classes
  (rounded, at least one each way; dhash's choice: 8 of 10) train the network — all their items of
  the training subset where the data set has one, else all their items; per unseen class
  ``queries_per_class`` random items are queries, and the database is every other unseen-class item.

Every draw uses ``numpy.random.default_rng(seed)``; the index arrays are sorted.

``hold_out_validation`` then moves a seeded fraction of the training items (per class) into a
``validation`` part, from which training picks its best epoch: test queries are never used for it.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from ...atomic import atomic_path
from ...errors import DHashError
from .source import Source

PROTOCOLS = ("full", "per-class", "random", "unseen")
SEEN_FRACTION = 0.75  # classes that train the network under protocol "unseen"
PARTS = ("train", "query", "database")


@dataclass(eq=False)  # numpy fields: == would be ambiguous, so equality is identity
class Split:
    """Index arrays (int64, into the ``Source``) of the three parts, and how they were drawn."""

    train: np.ndarray
    query: np.ndarray
    database: np.ndarray
    protocol: str
    seed: int
    size: int | None = None  # number of items of the source it was made for
    validation: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # held out of train

    def save(self, path: str | os.PathLike) -> None:
        """Write an ``.npz`` file atomically."""
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez(
                f,
                **{part: getattr(self, part) for part in (*PARTS, "validation")},
                protocol=np.array(self.protocol),
                seed=np.array(self.seed, dtype=np.int64),
                size=np.array(-1 if self.size is None else self.size, dtype=np.int64),
            )

    @classmethod
    def load(cls, path: str | os.PathLike) -> Split:
        """Read a file written by ``save``."""
        try:
            data = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as err:
            raise DHashError(f"{path}: cannot read split file ({err})") from None
        if not isinstance(data, np.lib.npyio.NpzFile):
            raise DHashError(f"{path}: not a dhash split file (a single array, not an .npz archive)")
        with data:
            arrays = {k: data[k] for k in data.files}
        missing = [k for k in (*PARTS, "protocol", "seed", "size") if k not in arrays]
        if missing:
            raise DHashError(f"{path}: not a dhash split file (no {', '.join(missing)})")
        size = int(arrays["size"])
        return cls(
            **{part: arrays[part].astype(np.int64) for part in PARTS},
            protocol=str(arrays["protocol"]),
            seed=int(arrays["seed"]),
            size=None if size < 0 else size,
            validation=arrays.get("validation", np.zeros(0, np.int64)).astype(np.int64),  # older files: none
        )

    def check(self, source: Source) -> None:
        """Raise unless this split fits ``source`` (same size, indices in range)."""
        top = max((int(getattr(self, p).max()) for p in PARTS if len(getattr(self, p))), default=-1)
        if (self.size is not None and self.size != len(source)) or top >= len(source):
            raise DHashError(
                f"{source.name}: has {len(source)} items, but the {self.protocol} split was made for "
                f"{self.size if self.size is not None else 'more'}; use the data the run was trained on"
            )


def make_split(
    source: Source,
    protocol: str = "full",
    seed: int = 0,
    queries_per_class: int = 100,
    train_per_class: int = 500,
    num_queries: int | float | None = None,
    num_train: int | float | None = None,
) -> Split:
    """Split ``source`` by ``protocol`` (see the module docstring).

    ``num_queries`` / ``num_train`` (``random`` only): a count, or a fraction in (0, 1) of all items
    (queries) or of the non-query items (training).
    """
    if protocol not in PROTOCOLS:
        raise DHashError(f"unknown protocol '{protocol}'; choose one of {', '.join(PROTOCOLS)}")
    if seed < 0:
        raise DHashError(f"seed must be >= 0, got {seed}")
    rng = np.random.default_rng(seed)
    if protocol == "full":
        train, query, database = _full(source)
    elif protocol == "per-class":
        train, query, database = _per_class(source, rng, queries_per_class, train_per_class)
    elif protocol == "unseen":
        train, query, database = _unseen(source, rng, queries_per_class)
    else:
        train, query, database = _random(source, rng, queries_per_class, train_per_class, num_queries, num_train)
    parts = {"train": train, "query": query, "database": database}
    parts = {k: np.sort(np.asarray(v, dtype=np.int64)) for k, v in parts.items()}
    return Split(**parts, protocol=protocol, seed=seed, size=len(source))


def hold_out_validation(split: Split, source: Source, fraction: float, seed: int) -> None:
    """Move ``fraction`` of ``split.train`` into ``split.validation``: per class for single-label data
    (at least one item of each class with two or more), at random otherwise; seeded, sorted."""
    if fraction <= 0:
        return
    rng = np.random.default_rng([seed, 1])  # a stream of its own: the protocol's draw stays as it was
    train = split.train
    if source.labels is not None and not source.multi_label and source.labels[train].any(axis=1).all():
        groups = [train[source.labels[train, c] > 0] for c in range(source.num_classes)]
    else:
        groups = [train]
    held = [rng.choice(g, max(1, round(fraction * len(g))), replace=False) for g in groups if len(g) >= 2]
    validation = np.sort(np.concatenate(held)) if held else np.zeros(0, np.int64)
    split.train, split.validation = np.setdiff1d(train, validation), validation


def _full(source: Source) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if source.subset is None:
        other = "per-class or random" if source.labels is not None and not source.multi_label else "random"
        raise DHashError(f"{source.name}: has no train/test split of its own for protocol 'full'; use {other}")
    train = np.flatnonzero(source.subset == 0)
    query = np.flatnonzero(source.subset == 1)
    if not len(train) or not len(query):
        raise DHashError(f"{source.name}: protocol 'full' needs items in both its train and test subsets")
    return train, query, train


def _single_label(source: Source, protocol: str) -> None:
    if source.labels is None:
        raise DHashError(f"{source.name}: protocol '{protocol}' needs labels; this data set has none")
    if source.multi_label:
        raise DHashError(f"{source.name}: protocol '{protocol}' needs single-label data; use 'random' for multi-label")


def _per_class(source: Source, rng: np.random.Generator, queries: int, train: int):
    _single_label(source, "per-class")
    if queries < 1 or train < 1:
        raise DHashError(f"per-class needs at least 1 query and 1 training item per class, got {queries} and {train}")
    query_parts, train_parts = [], []
    for c, name in enumerate(source.classes):
        members = rng.permutation(np.flatnonzero(source.labels[:, c]))
        if len(members) < queries + train:
            raise DHashError(
                f"{source.name}: class '{name}' has {len(members)} items; protocol 'per-class' needs "
                f"{queries} queries + {train} training items per class (lower --queries-per-class / --train-per-class)"
            )
        query_parts.append(members[:queries])
        train_parts.append(members[queries : queries + train])
    query = np.concatenate(query_parts)
    return np.concatenate(train_parts), query, np.setdiff1d(np.arange(len(source)), query)


def _unseen(source: Source, rng: np.random.Generator, queries: int):
    _single_label(source, "unseen")
    c = source.num_classes
    if c < 2:
        raise DHashError(f"{source.name}: protocol 'unseen' needs at least 2 classes, got {c}")
    if queries < 1:
        raise DHashError(f"unseen needs at least 1 query per unseen class, got {queries}")
    seen = np.sort(rng.permutation(c)[: min(c - 1, max(1, int(SEEN_FRACTION * c + 0.5)))])
    item_seen = source.labels[:, seen].any(axis=1)
    pool = item_seen if source.subset is None else item_seen & (source.subset == 0)
    query_parts, rest = [], []
    for k in np.setdiff1d(np.arange(c), seen):
        members = rng.permutation(np.flatnonzero(source.labels[:, k]))
        if len(members) <= queries:
            raise DHashError(
                f"{source.name}: unseen class '{source.classes[k]}' has {len(members)} items; protocol 'unseen' "
                f"needs more than {queries} (lower --queries-per-class)"
            )
        query_parts.append(members[:queries])
        rest.append(members[queries:])
    return np.flatnonzero(pool), np.concatenate(query_parts), np.concatenate(rest)


def _random(
    source: Source,
    rng: np.random.Generator,
    queries_per_class: int,
    train_per_class: int,
    num_queries: int | float | None,
    num_train: int | float | None,
):
    n, c = len(source), source.num_classes
    if (num_queries is None or num_train is None) and not c:
        raise DHashError(f"{source.name}: has no classes; protocol 'random' needs explicit query and training counts")
    q = _count(num_queries, queries_per_class * c, n, "queries")
    t = _count(num_train, train_per_class * c, n - q, "training items")
    if q < 1 or t < 1 or q + t > n:
        raise DHashError(
            f"{source.name}: has {n} items; protocol 'random' cannot take {q} queries and {t} training items "
            "from the rest (each must be at least 1)"
        )
    order = rng.permutation(n)
    return order[q : q + t], order[:q], order[q:]


def _count(value: int | float | None, default: int, total: int, what: str) -> int:
    """A count, or a fraction of ``total``; None gives ``default``."""
    if value is None:
        return default
    if isinstance(value, float) and not value.is_integer():
        if not 0 < value < 1:
            raise DHashError(f"the number of {what} must be a count or a fraction in (0, 1), got {value}")
        return max(1, round(value * total))
    return int(value)
