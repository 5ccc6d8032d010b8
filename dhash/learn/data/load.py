"""``load_source``: turn one ``--data`` argument into a ``Source``; ``images_by_id``: some of its images."""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from ...errors import DHashError
from .cifar import load_cifar10
from .features import load_features
from .folder import load_folder
from .idx import load_idx_dataset
from .listfile import load_list_file
from .mosaic import load_mosaic
from .source import Source

BUILTIN = ("fashion-mnist", "mnist", "cifar10", "fashion-mnist-mosaic")
LIST_SUFFIXES = (".txt",)
FEATURE_SUFFIXES = (".h5", ".hdf5")


def load_source(
    spec: str, data_dir: str | os.PathLike | None = None, strict: bool = False, progress: bool = False
) -> Source:
    """Load a data set.

    Parameters
    ----------
    spec
        ``fashion-mnist``, ``mnist`` or ``cifar10`` (found on disk or downloaded, see
        ``dhash.learn.data.download``), ``fashion-mnist-mosaic`` (multi-label, built from Fashion-MNIST); a
        folder of images (sub-folder = class); a ``.txt`` list file
        (``path l1 … lC`` per line); or an ``.h5`` / ``.hdf5`` feature file. A built-in name wins
        over a folder of the same name: write ``./mnist`` for the folder.
    data_dir
        Folder searched first for the built-in data sets.
    strict
        Make an unreadable or missing image file an error instead of a warning.
    progress
        Show a progress bar while image files are checked.
    """
    if spec == "cifar10":
        return load_cifar10(data_dir)
    if spec == "fashion-mnist-mosaic":
        return load_mosaic(data_dir)
    if spec in BUILTIN:
        return load_idx_dataset(spec, data_dir)
    path = Path(spec)
    if path.is_dir():
        return load_folder(path, strict, progress)
    if not path.exists():
        raise DHashError(f"{spec}: no such file or folder, and not a built-in data set ({', '.join(BUILTIN)})")
    suffix = path.suffix.lower()
    if suffix in LIST_SUFFIXES:
        return load_list_file(path, strict, progress)
    if suffix in FEATURE_SUFFIXES:
        return load_features(path)
    raise DHashError(
        f"{spec}: unknown data format '{suffix}'; expected a folder, a .txt list file, an .h5/.hdf5 feature file "
        f"or one of {', '.join(BUILTIN)}"
    )


def images_by_id(dataset: str, ids: Sequence[str], data_dir: str | None = None) -> list[np.ndarray]:
    """The images of ``dataset`` (a ``--data`` spec) whose ids (as in code files) are ``ids``."""
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
