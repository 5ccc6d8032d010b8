"""Grow or shrink an index file in place: append the codes of a code file, remove codes by id.

The new index is written to a temporary file and renamed over the old one, so the old file
stays valid (and searchable) until the new one is complete. Appended codes get the next
indices; removal keeps the order of the remaining codes (their indices shift down). An MIH index
is rebuilt with the substring count it was created with.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import DHashError
from .codes import read_code_file
from .index import LinearIndex, MIHIndex
from .index_file import IndexFile, load_index, save_index


def read_id_list(path: str | os.PathLike) -> list[str]:
    """Ids, one per line (blank lines ignored)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DHashError(f"{p}: no such file") from None
    except (UnicodeDecodeError, IsADirectoryError) as exc:
        raise DHashError(f"{p}: not a UTF-8 text file of ids ({type(exc).__name__})") from None
    return [line.strip() for line in text.splitlines() if line.strip()]


def _rebuilt(loaded: IndexFile, codes: np.ndarray) -> LinearIndex:
    old = loaded.index
    index = MIHIndex(old.bits, old.requested_substrings) if isinstance(old, MIHIndex) else LinearIndex(old.bits)
    index.add(codes)
    return index


def update_index(index_path: str | os.PathLike, append: str | os.PathLike | None = None,
                 remove: str | os.PathLike | None = None) -> IndexFile:
    """Remove the ids listed in ``remove`` (a text file), then append the code file ``append``."""
    loaded = load_index(index_path)
    codes, ids, labels = loaded.index.codes(), loaded.ids, loaded.labels
    if remove is not None:
        drop = set(read_id_list(remove))
        if ids is None:
            raise DHashError(f"{index_path}: has no ids, so nothing can be removed by id")
        missing = drop.difference(ids)
        if missing:
            raise DHashError(f"{remove}: {len(missing):,} ids are not in {index_path} (first: {sorted(missing)[0]!r})")
        keep = np.array([i not in drop for i in ids], dtype=bool)
        codes, ids = codes[keep], [i for i, k in zip(ids, keep) if k]
        labels = None if labels is None else labels[keep]
    if append is not None:
        more = read_code_file(append)
        if more.bits != loaded.index.bits:
            raise DHashError(f"{append}: holds {more.bits}-bit codes but {index_path} indexes {loaded.index.bits}-bit codes")
        if (more.ids is None) != (ids is None):
            raise DHashError(f"{append}: ids {'missing' if more.ids is None else 'given'} but {index_path} "
                             f"{'has ids' if ids is not None else 'has none'}; both need ids or neither")
        if (more.labels is None) != (labels is None) or (labels is not None and labels.shape[1] != more.labels.shape[1]):
            raise DHashError(f"{append}: its labels ({_shape(more.labels)}) do not match {index_path}'s ({_shape(labels)})")
        if ids is not None:
            clash = set(ids).intersection(more.ids)
            if clash:
                raise DHashError(f"{append}: {len(clash):,} ids are already in {index_path} (first: {sorted(clash)[0]!r})")
            ids = [*ids, *more.ids]
        codes = np.concatenate([codes, more.codes])
        labels = None if labels is None else np.concatenate([labels, more.labels])
    index = _rebuilt(loaded, codes)
    inputs = [p for p in (append, remove) if p is not None]
    save_index(index, index_path, ids, labels, loaded.attrs, inputs=inputs)
    return IndexFile(index, ids, labels, loaded.attrs)


def _shape(labels: np.ndarray | None) -> str:
    return "none" if labels is None else f"{labels.shape[1]} classes"
