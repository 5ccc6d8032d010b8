"""MNIST and Fashion-MNIST: the four IDX files (gzip-compressed or plain) of each data set.

IDX layout (LeCun): two zero bytes, a type byte (0x08 = unsigned byte), a byte with the number of
dimensions, one big-endian uint32 per dimension, then the values in row-major order.
"""
from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import numpy as np

from ...errors import DHashError
from .download import Remote, locate
from .source import Source, one_hot

IMAGES_MAGIC = 0x00000803  # unsigned bytes, 3 dimensions (N × rows × cols)
LABELS_MAGIC = 0x00000801  # unsigned bytes, 1 dimension (N)
FILES = {  # (subset, images file, labels file)
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

DATASETS = {
    "fashion-mnist": (
        ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"],
        Remote(
            mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
            md5={
                "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
                "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
                "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
                "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
            },
        ),
        "install the Debian package dataset-fashion-mnist (it puts the files in /usr/share/datasets/fashion-mnist)",
    ),
    # Debian has no MNIST package; /usr/share/datasets/mnist is searched for symmetry with Fashion-MNIST.
    "mnist": (
        [str(d) for d in range(10)],
        Remote(
            mirrors=("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"),
            md5={
                "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
                "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
                "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
                "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
            },
        ),
        "download the four IDX files from the MNIST site",
    ),
}


def load_idx_dataset(name: str, data_dir: str | os.PathLike | None = None) -> Source:
    """Load ``fashion-mnist`` or ``mnist``: train (subset 0) then test (subset 1), images N×28×28 uint8."""
    classes, remote, how = DATASETS[name]
    hint = f"{how}, or put {', '.join(remote.md5)} in --data-dir or $DHASH_DATA"
    folder = locate(name, (name,), _complete, remote, hint, data_dir)
    images, labels, ids, subset = [], [], [], []
    for code, (part, (images_file, labels_file)) in enumerate(FILES.items()):
        x = read_idx(_find(folder, images_file), IMAGES_MAGIC)
        y = read_idx(_find(folder, labels_file), LABELS_MAGIC)
        if len(x) != len(y):
            raise DHashError(f"{_find(folder, labels_file)}: {len(y)} labels for {len(x)} images in {images_file}")
        if y.size and int(y.max()) >= len(classes):
            raise DHashError(f"{_find(folder, labels_file)}: label {int(y.max())} out of range 0..{len(classes) - 1}")
        images.append(x)
        labels.append(y)
        ids += [f"{part}/{i}" for i in range(len(x))]
        subset.append(np.full(len(x), code, dtype=np.uint8))
    return Source(
        name=name,
        images=np.concatenate(images),
        labels=one_hot(np.concatenate(labels), len(classes)),
        classes=list(classes),
        ids=ids,
        subset=np.concatenate(subset),
    )


def _find(folder: Path, stem: str) -> Path:
    """The gzip file if present, else the plain one."""
    gz = folder / f"{stem}.gz"
    return gz if gz.exists() else folder / stem


def _complete(folder: Path) -> bool:
    return all(_find(folder, stem).is_file() for pair in FILES.values() for stem in pair)


def read_idx(path: Path, magic: int) -> np.ndarray:
    """Read an unsigned-byte IDX file (gzip or plain) whose header must carry ``magic``."""
    try:
        with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError, zlib.error) as err:
        raise DHashError(f"{path}: cannot read ({err})") from None
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(data) < header or int.from_bytes(data[:4], "big") != magic:
        found = data[:4].hex() if len(data) >= 4 else "nothing"
        raise DHashError(f"{path}: not an IDX file with magic number {magic:08x} (found {found})")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    if len(data) - header != int(np.prod(shape)):
        raise DHashError(f"{path}: header says {'×'.join(map(str, shape))} values, file holds {len(data) - header}")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)
