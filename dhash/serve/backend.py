"""Search backends behind the service, and the reloadable holder that swaps them without dropping requests.

A backend has ``name``, ``bits``, ``ntotal``, ``classes`` (names), ``dataset`` (where its images
are, or None), ``blocking`` (whether a search waits on another process, so it must not run on the
event loop), ``describe()``, ``search``, ``range_search``, ``ids_of``, ``labels_of``, ``has_item``
and ``random_item``: :class:`IndexBackend` (a dhash index in memory) and :class:`MilvusBackend`
(a collection from ``dhash export --to milvus``).
"""
from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DHashError
from ..search.index import selected_kernel
from ..search.index_file import load_index
from .items import ItemNotFound
from .uploads import RequestError

RETIRE_AFTER_S = 60.0  # a replaced backend is closed this long after the swap (requests in flight finish)


class IndexBackend:
    """A dhash index file loaded into memory (linear scan or MIH), searched by the compiled core."""

    blocking = False

    def __init__(self, path: str | os.PathLike, threads: int | None = 1, kernel: str | None = None) -> None:
        self.path = Path(path)
        self.name = str(self.path)
        self.mtime = self.path.stat().st_mtime if self.path.exists() else 0.0
        loaded = load_index(self.path)
        self.index, self.ids, self.labels, self.attrs = loaded.index, loaded.ids, loaded.labels, loaded.attrs
        self.threads, self.kernel = threads, kernel
        self.kernel_name = selected_kernel(kernel)  # fails now on a kernel this CPU lacks
        self.bits, self.ntotal = self.index.bits, self.index.ntotal
        classes = self.attrs.get("source_classes")
        self.classes = [str(c) for c in classes] if classes is not None else []
        self.dataset: str | None = self.attrs.get("source_dataset")
        self.row = {id_: i for i, id_ in enumerate(self.ids)} if self.ids is not None else {}
        self._codes = self.index.codes()

    def describe(self) -> dict[str, Any]:
        """What /stats shows about the backend."""
        return {"backend": "index", "path": self.name, "kind": self.index.kind, "codes": self.ntotal,
                "bits": self.bits, "kernel": self.kernel_name, "dataset": self.dataset, "classes": self.classes}

    def search(self, codes: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Exact k-NN: ``(distances nq×k, indices nq×k)``, padded with index -1 past ntotal."""
        return self.index.search(codes, k, self.threads, self.kernel)

    def range_search(self, codes: np.ndarray, radius: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every code within ``radius``: ``(lims, distances, indices)``."""
        return self.index.range_search(codes, radius, self.threads, self.kernel)

    def ids_of(self, rows: list[int]) -> list[str] | None:
        """The ids of database rows (None when the index has no ids)."""
        return None if self.ids is None else [self.ids[r] for r in rows]

    def labels_of(self, rows: list[int]) -> list[list[int]] | None:
        """The class indices of database rows (None when the index has no labels)."""
        return None if self.labels is None else [np.flatnonzero(self.labels[r]).tolist() for r in rows]

    def has_item(self, id_: str) -> bool:
        return id_ in self.row

    def random_item(self) -> dict[str, Any]:
        """A database item drawn at random: index, id, labels and code (hex)."""
        if self.ntotal == 0:
            raise ItemNotFound("the index is empty")
        row = random.randrange(self.ntotal)
        labels = self.labels_of([row])
        return {"index": row, "id": None if self.ids is None else self.ids[row],
                "labels": None if labels is None else labels[0], "code": self._codes[row].tobytes().hex()}


class MilvusBackend:
    """A collection written by ``dhash export --to milvus``, searched by Milvus (a Lite file or a server).

    Ids and labels come with each search's hits; class names and the image data set from the
    collection's description (collections exported before they were kept there show class numbers
    and serve no images). ``ntotal`` is the count when the collection was opened (again at reload).
    A failure of Milvus itself is a 502.
    """

    blocking = True  # every search is a call to Milvus: it waits in a pool thread, not on the event loop

    def __init__(self, uri: str, collection: str, token: str | None = None) -> None:
        from ..search.backends.milvus import MilvusIndex

        self.uri, self.collection = uri, collection
        self.name = f"{uri} (collection {collection})"
        self.index = MilvusIndex(uri, collection, token)
        self.bits, self.ntotal = self.index.bits, self.index.ntotal
        meta = self.index.meta
        n_classes = int(meta.get("classes", 0))
        self.classes = [str(c) for c in meta.get("class_names") or range(n_classes)]
        self.has_labels = n_classes > 0
        self.dataset: str | None = meta.get("dataset")

    def describe(self) -> dict[str, Any]:
        """What /stats shows about the backend."""
        return {"backend": "milvus", "uri": self.uri, "collection": self.collection, "kind": "milvus BIN_FLAT",
                "codes": self.ntotal, "bits": self.bits, "kernel": None, "dataset": self.dataset,
                "classes": self.classes}

    def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        from ..search.backends.milvus import MilvusFailure

        try:
            return fn(*args)
        except MilvusFailure as exc:
            raise RequestError(502, str(exc)) from None

    def search(self, codes: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Exact k-NN by Milvus (BIN_FLAT): rows ordered by (distance, row), padded with -1."""
        return self._call(self.index.search, codes, k)

    def range_search(self, codes: np.ndarray, radius: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every code within ``radius`` (at most 16,384 per query, Milvus' limit)."""
        return self._call(self.index.range_search, codes, radius)

    def ids_of(self, rows: list[int]) -> list[str]:
        """The ids of rows returned by searches (every row comes back with its id)."""
        return [self.index.ids[r] for r in rows]

    def labels_of(self, rows: list[int]) -> list[list[int]] | None:
        return [self.index.row_labels[r] for r in rows] if self.has_labels else None

    def has_item(self, id_: str) -> bool:
        return self._call(self.index.has_id, id_)

    def random_item(self) -> dict[str, Any]:
        """A row drawn at random from 0..ntotal-1 (export numbers the rows so), fetched from Milvus."""
        if self.ntotal == 0:
            raise ItemNotFound("the collection is empty")
        row = random.randrange(self.ntotal)
        found = self._call(self.index.item, row)
        if found is None:
            raise ItemNotFound(f"row {row}: not in collection {self.collection!r} (rows deleted?)")
        id_, labels, code = found
        return {"index": row, "id": id_, "labels": labels if self.has_labels else None, "code": code.hex()}

    def close(self) -> None:
        self.index.close()


class Reloadable:
    """Holds the current backend; :meth:`reload` builds a new one and swaps the reference.

    Requests take :attr:`current` once and keep using that object, so a reload never disturbs a
    search in flight; reloads themselves are serialised by a lock. ``check`` vets a new backend
    (e.g. the code length the model gives) before it is swapped in.
    """

    def __init__(self, open_backend: Callable[[], Any], check: Callable[[Any], None] = lambda b: None) -> None:
        self._open, self._check = open_backend, check
        self._lock = threading.Lock()
        self.current = open_backend()
        check(self.current)
        self.reloads, self.loaded_at = 0, time.time()
        self._seen: dict[Path, float] = {}

    def reload(self) -> Any:
        """Load the backend anew and swap it in; on failure the old one stays and the error is raised."""
        with self._lock:
            backend = self._open()
            self._check(backend)
            old, self.current = self.current, backend  # one reference assignment: atomic for every reader
            self.reloads, self.loaded_at = self.reloads + 1, time.time()
        if hasattr(old, "close"):  # a connection: closed later, when the requests that took it are done
            timer = threading.Timer(RETIRE_AFTER_S, old.close)
            timer.daemon = True
            timer.start()
        return backend

    def changed(self) -> bool:
        """Whether the backend's file changed since it was loaded (or since the last failed reload)."""
        path = getattr(self.current, "path", None)
        try:
            mtime = path.stat().st_mtime if path is not None else None
        except OSError:  # being replaced right now: look again later
            return False
        if mtime is None or mtime == self._seen.get(path, self.current.mtime):
            return False
        self._seen[path] = mtime
        return True


def check_bits(expected: int | None) -> Callable[[Any], None]:
    """A ``Reloadable`` check that the backend holds codes of the model's length."""
    def check(backend: Any) -> None:
        if expected is not None and backend.bits != expected:
            raise DHashError(f"{backend.name}: holds {backend.bits}-bit codes but "
                             f"the model gives {expected}-bit codes")
    return check


def watch(holder: Reloadable, interval: float = 1.0, log: Callable[[str], None] = print) -> threading.Thread:
    """Reload ``holder`` whenever its file changes (polled every ``interval`` s), in a daemon thread."""
    def loop() -> None:
        while True:
            time.sleep(interval)
            if holder.changed():
                try:
                    backend = holder.reload()
                    log(f"reloaded {backend.path}: {backend.ntotal:,} codes")
                except DHashError as exc:
                    log(f"reload failed, still serving the old index: {exc}")

    thread = threading.Thread(target=loop, name="dhash-serve-watch", daemon=True)
    thread.start()
    return thread
