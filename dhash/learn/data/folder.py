"""A folder of images: each top-level sub-folder is a class, searched recursively (single label).

A folder without class sub-folders is an unlabelled collection (for ``dhash encode``); in a
labelled one, image files lying directly in the top folder have no class and are reported and
skipped. Items are sorted by path, so the order (and a seeded split) does not depend on the file
system.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from ...errors import DHashError
from .imagefiles import SUFFIXES, check_images
from .source import Source, one_hot


def load_folder(root: Path, strict: bool = False, progress: bool = False) -> Source:
    """Load an image folder; unreadable files are skipped with a warning (an error if ``strict``)."""
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in SUFFIXES and p.is_file())
    if not files:
        raise DHashError(f"{root}: no image files ({', '.join(sorted(SUFFIXES))}) in this folder")
    classes = sorted({p.relative_to(root).parts[0] for p in files if p.parent != root})
    loose = [str(p) for p in files if p.parent == root] if classes else []
    if loose:
        message = f"{root}: {len(loose)} images outside the class sub-folders have no class: {', '.join(loose[:10])}"
        if strict:
            raise DHashError(message)
        warnings.warn(message + " (skipped)", stacklevel=3)
        files = [p for p in files if p.parent != root]
    paths = [str(p) for p in files]
    ok, bad = check_images(paths, str(root), strict, progress)
    paths = [p for p, good in zip(paths, ok, strict=True) if good]
    if not paths:
        raise DHashError(f"{root}: none of the {len(ok)} image files can be read")
    labels = None
    if classes:
        index = {c: i for i, c in enumerate(classes)}
        labels = one_hot(np.array([index[Path(p).relative_to(root).parts[0]] for p in paths]), len(classes))
    return Source(
        name=str(root),
        paths=paths,
        labels=labels,
        classes=classes,
        ids=list(paths),
        skipped=[f"{p} (no class sub-folder)" for p in loose] + bad,
    )
