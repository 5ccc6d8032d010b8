"""An HDF5 file of precomputed features, to train only a hash head.

Datasets: ``features`` N×D float (required); ``labels`` N×C 0/1 or N class indices (one-hot
encoded here; absent = unlabelled); optional ``ids`` (N strings), ``classes`` (C strings) and
``subset`` (N values, 0 = train, 1 = test: the data set's own split, for ``--protocol full``).
"""
from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from ...errors import DHashError
from .source import Source, one_hot


def load_features(path: Path) -> Source:
    """Load a feature file; every array is checked against N and its expected type."""
    try:
        with h5py.File(path, "r") as f:
            arrays = {k: f[k][()] for k in ("features", "labels", "ids", "classes", "subset") if k in f}
    except (OSError, KeyError, TypeError) as err:
        raise DHashError(f"{path}: cannot read HDF5 feature file ({err})") from None
    if "features" not in arrays:
        raise DHashError(f"{path}: no 'features' dataset (expected N×D floats)")
    features = arrays["features"]
    if features.ndim != 2 or features.dtype.kind not in "fiu" or not len(features):
        raise DHashError(f"{path}: 'features' is {features.dtype} {features.shape}, expected N×D floats")
    features = np.ascontiguousarray(features, dtype=np.float32)
    if not np.isfinite(features).all():
        raise DHashError(f"{path}: 'features' holds NaN or infinite values")
    n = len(features)
    labels, classes = _labels(path, arrays, n)
    ids = _strings(path, arrays, "ids", n) if "ids" in arrays else [f"{path.name}/{i}" for i in range(n)]
    subset = arrays.get("subset")
    if subset is not None and (subset.shape != (n,) or not np.isin(subset, (0, 1)).all()):
        raise DHashError(f"{path}: 'subset' must be {n} values of 0 (train) or 1 (test)")
    return Source(
        name=str(path),
        features=features,
        labels=labels,
        classes=classes,
        ids=ids,
        subset=None if subset is None else subset.astype(np.uint8),
    )


def _labels(path: Path, arrays: dict, n: int) -> tuple[np.ndarray | None, list[str]]:
    """Multi-hot labels (from 0/1 rows or class indices) and class names."""
    labels = arrays.get("labels")
    if labels is None:
        return None, []
    if labels.ndim not in (1, 2) or labels.dtype.kind not in "biu" or len(labels) != n:
        raise DHashError(f"{path}: 'labels' is {labels.dtype} {labels.shape}, expected {n}×C 0/1 or {n} class indices")
    if labels.ndim == 1:
        if labels.min() < 0:
            raise DHashError(f"{path}: 'labels' holds negative class indices")
        num = len(arrays["classes"]) if "classes" in arrays else int(labels.max()) + 1
        if labels.max() >= num:
            raise DHashError(f"{path}: class index {int(labels.max())} but only {num} classes")
        labels = one_hot(labels.astype(np.int64), num)
    elif not np.isin(labels, (0, 1)).all():
        raise DHashError(f"{path}: 'labels' N×C must hold only 0 and 1")
    num = labels.shape[1]
    classes = _strings(path, arrays, "classes", num) if "classes" in arrays else [str(c) for c in range(num)]
    return labels.astype(np.uint8), classes


def _strings(path: Path, arrays: dict, key: str, count: int) -> list[str]:
    values = arrays[key]
    if values.shape != (count,):
        raise DHashError(f"{path}: '{key}' has shape {values.shape}, expected {count} strings")
    return [v.decode() if isinstance(v, bytes) else str(v) for v in values]
