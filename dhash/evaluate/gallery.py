"""Retrieval picture: each query image followed by its top results, framed green (relevant) or red.

``retrieval_grid`` draws given images; ``query_grid`` draws a search's queries and results, their
images found by the ids in the code and index files (``dhash query --grid``).
"""
from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageDraw

from ..atomic import atomic_path
from ..errors import DHashError

if TYPE_CHECKING:
    from ..search.codes import CodeFile
    from ..search.index_file import IndexFile

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


def query_grid(path: str | os.PathLike, queries: CodeFile, index: IndexFile, results: Sequence[Sequence[int]],
               images: Callable[[str, Sequence[str]], list[np.ndarray]], query_files: bool = False) -> Path:
    """Draw the queries of a search and their ``results`` (rows of the index, -1: none), framed by relevance.

    The images are found by id with ``images(dataset, ids)`` (``dhash.learn.data.images_by_id``): the
    query ids name image files (``query_files``) or items of the query code file's data set; result
    ids name items of the data set the index was built from. Relevant means sharing a label, when
    both files have labels.
    """
    if queries.ids is None or index.ids is None:
        raise DHashError("--grid needs ids in the query code file and in the index (as `dhash encode` writes)")
    db_data = index.attrs.get("source_dataset")
    if db_data is None:
        raise DHashError(f"{index.attrs.get('source', 'index')}: no 'dataset' attribute, cannot find the images")
    if query_files:
        q_images = [np.asarray(Image.open(p).convert("RGB")) for p in queries.ids]
    else:
        q_images = images(queries.attrs.get("dataset", db_data), queries.ids)
    rows = [[int(i) for i in r if i >= 0] for r in results]
    db_images = images(db_data, [index.ids[i] for r in rows for i in r])
    found, start = [], 0
    for r in rows:
        found.append(db_images[start:start + len(r)])
        start += len(r)
    has_labels = queries.labels is not None and index.labels is not None
    relevant = [[bool(np.any(queries.labels[n] & index.labels[i])) if has_labels else None for i in r]
                for n, r in enumerate(rows)]
    return retrieval_grid(q_images, found, relevant, path)
