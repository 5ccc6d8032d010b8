"""A list file: one image per line, ``path l1 l2 … lC`` with 0/1 labels (NUS-WIDE / MS-COCO hashing format).

Paths are relative to the list file's folder (absolute paths are kept). Blank lines and lines
starting with ``#`` are ignored. A file whose lines hold only paths is an unlabelled collection.
The format names no classes; they are called ``"0"`` … ``"C-1"``. Paths may not contain spaces.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ...errors import DHashError
from .imagefiles import check_images
from .source import Source


def load_list_file(path: Path, strict: bool = False, progress: bool = False) -> Source:
    """Load a list file; missing or unreadable images are skipped with a warning (an error if ``strict``)."""
    paths, rows = _parse(path)
    ok, bad = check_images(paths, str(path), strict, progress)
    keep = np.flatnonzero(ok)
    if not len(keep):
        raise DHashError(f"{path}: none of the {len(paths)} listed images can be read")
    num_classes = len(rows[0]) if rows[0] else 0
    labels = np.array(rows, dtype=np.uint8)[keep] if num_classes else None
    kept = [paths[i] for i in keep]
    return Source(
        name=str(path),
        paths=kept,
        labels=labels,
        classes=[str(c) for c in range(num_classes)],
        ids=list(kept),
        skipped=bad,
    )


def _parse(path: Path) -> tuple[list[str], list[list[int]]]:
    """Image paths (resolved against the file's folder) and their label rows; bad lines name file and line."""
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise DHashError(f"{path}: cannot read list file ({err})") from None
    paths, rows, first = [], [], None
    for number, line in enumerate(lines, 1):
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        if any(f not in ("0", "1") for f in fields[1:]):
            raise DHashError(f"{path}:{number}: labels must be 0 or 1, found {line.strip()!r}")
        if first is None:
            first = (number, len(fields) - 1)
        elif len(fields) - 1 != first[1]:
            raise DHashError(
                f"{path}:{number}: {len(fields) - 1} labels, but line {first[0]} has {first[1]}; "
                "expected 'path l1 … lC' with the same C on every line"
            )
        paths.append(str(path.parent / fields[0]))
        rows.append([int(f) for f in fields[1:]])
    if not paths:
        raise DHashError(f"{path}: no images listed")
    return paths, rows
