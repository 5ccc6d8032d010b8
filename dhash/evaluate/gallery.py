"""Retrieval picture: each query image followed by its top results, framed green (relevant) or red."""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from ..atomic import atomic_path
from ..errors import DHashError

GREEN, RED, QUERY, UNKNOWN = (40, 170, 60), (210, 40, 40), (60, 90, 200), (160, 160, 160)


def _tile(image: np.ndarray, size: int, colour: tuple[int, int, int], frame: int) -> Image.Image:
    img = Image.fromarray(np.asarray(image, dtype=np.uint8)).convert("RGB")
    img = img.resize((size, size), Image.NEAREST if min(img.size) < size else Image.BILINEAR)
    tile = Image.new("RGB", (size + 2 * frame, size + 2 * frame), colour)
    tile.paste(img, (frame, frame))
    return tile


def retrieval_grid(
    queries: Sequence[np.ndarray],
    results: Sequence[Sequence[np.ndarray]],
    relevant: Sequence[Sequence[bool | None]],
    path: str | os.PathLike,
    size: int = 84,
) -> Path:
    """Write a PNG with one row per query: the query (blue frame), then its results in rank order.

    ``queries``: images (H×W grey or H×W×3 uint8); ``results[i]``: images retrieved for query i;
    ``relevant[i][j]``: whether result j shares a label with query i (None: unknown, grey frame).
    """
    frame, gap = max(2, size // 20), max(4, size // 8)
    cell = size + 2 * frame
    cols = 1 + max((len(r) for r in results), default=0)
    grid = Image.new("RGB", (cols * (cell + gap) + gap, len(queries) * (cell + gap) + gap), "white")
    draw = ImageDraw.Draw(grid)
    for row, (query, res, rel) in enumerate(zip(queries, results, relevant)):
        y = gap + row * (cell + gap)
        grid.paste(_tile(query, size, QUERY, frame), (gap, y))
        draw.line([(cell + gap * 1.5, y), (cell + gap * 1.5, y + cell)], fill=(150, 150, 150), width=1)
        for col, (image, ok) in enumerate(zip(res, rel), start=1):
            grid.paste(_tile(image, size, UNKNOWN if ok is None else GREEN if ok else RED, frame), (gap + col * (cell + gap), y))
    with atomic_path(path) as tmp:
        grid.save(tmp, format="PNG")
    return Path(path)


def images_by_id(dataset: str, ids: Sequence[str], data_dir: str | None = None) -> list[np.ndarray]:
    """The images of ``dataset`` (a ``--data`` spec) whose ids (as in code files) are ``ids``."""
    from ..learn.data import load_source

    source = load_source(dataset, data_dir)
    if source.images is None and source.paths is None:
        raise DHashError(f"{dataset}: holds features, not images, so there is nothing to draw")
    row = {id_: i for i, id_ in enumerate(source.ids)}
    images = []
    for id_ in ids:
        if id_ not in row:
            raise DHashError(f"{dataset}: has no item with id {id_!r} (was it encoded from other data?)")
        if source.images is not None:
            images.append(source.images[row[id_]])
        else:
            images.append(np.asarray(Image.open(source.paths[row[id_]]).convert("RGB")))
    return images
