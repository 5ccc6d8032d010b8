"""Search backends behind the service, and the reloadable holder that swaps them without dropping requests.

A backend is any object with the attributes and methods of :class:`IndexBackend` (``bits``,
``ntotal``, ``ids``, ``labels``, ``classes``, ``dataset``, ``describe()``, ``search``,
``range_search``, ``code``); adding another engine (e.g. Milvus) is one such class.
"""
from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DHashError
from ..search.index import selected_kernel
from ..search.index_file import load_index


class IndexBackend:
    """A dhash index file loaded into memory (linear scan or MIH), searched by the compiled core."""

    def __init__(self, path: str | os.PathLike, threads: int | None = 1, kernel: str | None = None) -> None:
        self.path = Path(path)
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
        return {"backend": "index", "path": str(self.path), "kind": self.index.kind, "codes": self.ntotal,
                "bits": self.bits, "kernel": self.kernel_name, "dataset": self.dataset, "classes": self.classes}

    def search(self, codes: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Exact k-NN: ``(distances nq×k, indices nq×k)``, padded with index -1 past ntotal."""
        return self.index.search(codes, k, self.threads, self.kernel)

    def range_search(self, codes: np.ndarray, radius: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every code within ``radius``: ``(lims, distances, indices)``."""
        return self.index.range_search(codes, radius, self.threads, self.kernel)

    def code(self, row: int) -> np.ndarray:
        """The packed code of database row ``row``."""
        return self._codes[row]


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
            self.current = backend  # one reference assignment: atomic for every reader
            self.reloads, self.loaded_at = self.reloads + 1, time.time()
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
            raise DHashError(f"{backend.describe().get('path', 'backend')}: holds {backend.bits}-bit codes but "
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
