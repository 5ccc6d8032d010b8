"""Database images by id, for ``GET /items/{id}/image``.

Only ids the index holds are served. A built-in data set (``fashion-mnist``, ...) gives its images
from memory; for a folder or list file the ids are the image files' paths, which are decoded and
re-encoded as PNG, so whatever an id names, only an image of the database ever leaves the server.
"""
from __future__ import annotations

import io
import threading
from typing import Any

import numpy as np
from PIL import Image

from .uploads import RequestError, decode_image

THUMBNAIL = 256  # longest side of a served image, in pixels


class ItemNotFound(LookupError):
    """No image for this id (unknown id, or an index that does not say where its images are)."""


class ItemImages:
    """PNG bytes of database images; the built-in data sets are loaded once, on first use."""

    def __init__(self, data_dir: str | None = None) -> None:
        self.data_dir = data_dir
        self._sources: dict[str, tuple[Any, dict[str, int]]] = {}
        self._lock = threading.Lock()

    def _builtin(self, name: str) -> tuple[Any, dict[str, int]]:
        from ..learn.data import load_source

        with self._lock:
            if name not in self._sources:
                source = load_source(name, self.data_dir)
                self._sources[name] = source, {id_: i for i, id_ in enumerate(source.ids)}
            return self._sources[name]

    def image(self, backend: Any, id_: str) -> Image.Image:
        """The image of database item ``id_`` of ``backend``; ``ItemNotFound`` when there is none."""
        if not backend.has_item(id_):
            raise ItemNotFound(f"{id_}: no such item in the index")
        dataset = backend.dataset
        if dataset is None or str(dataset).lower().endswith((".h5", ".hdf5")):
            raise ItemNotFound(f"{id_}: the index does not say where its images are (no image data set)")
        from ..learn.data import BUILTIN  # imports torch: on the first image asked for, not at start-up

        if dataset in BUILTIN:
            source, row = self._builtin(dataset)
            if id_ not in row:
                raise ItemNotFound(f"{id_}: not an item of {dataset}")
            return Image.fromarray(np.asarray(source.images[row[id_]]))
        try:
            with open(id_, "rb") as f:
                return decode_image(f.read(), id_)
        except OSError:
            raise ItemNotFound(f"{id_}: image file not found") from None
        except RequestError as exc:
            raise ItemNotFound(str(exc)) from None

    def png(self, backend: Any, id_: str) -> bytes:
        """``image`` shrunk to at most ``THUMBNAIL`` pixels a side, as PNG."""
        image = self.image(backend, id_)
        image.thumbnail((THUMBNAIL, THUMBNAIL))
        buf = io.BytesIO()
        image.convert("RGB" if image.mode not in ("L", "RGB") else image.mode).save(buf, format="PNG")
        return buf.getvalue()
