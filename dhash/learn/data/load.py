"""``load_source``: turn one ``--data`` argument into a ``Source``."""
from __future__ import annotations

import os
from pathlib import Path

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
        ``dhash.data.download``), ``fashion-mnist-mosaic`` (multi-label, built from Fashion-MNIST); a folder of images (sub-folder = class); a ``.txt`` list file
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
