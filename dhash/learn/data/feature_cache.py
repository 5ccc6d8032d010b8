"""The feature cache of frozen-backbone training: backbone features of images, kept in one HDF5 file.

Layout (``features.h5`` in the run folder, or the file the ``feature_cache`` setting names)::

    /                        attrs format = "dhash-feature-cache", version = 1
    /<backbone>/             one group per backbone: 16 hex digits of a SHA-256 over the backbone's
                             class, weights, buffers and input spec (attrs: backbone, input_size)
    /<backbone>/<view>/keys      N strings, one per item: "ITEM<TAB>STAMP"
    /<backbone>/<view>/features  N × D float32 (chunked, Fletcher-32 checksums)

Views: ``plain`` (the image as it is encoded) and ``flip`` (mirrored left-right: cached augmentation).
An item is an image file (ITEM: its absolute path; STAMP: its size in bytes and modification time in
ns) or an item of an in-memory data set (ITEM: the data set's fingerprint and the item's index), so a
changed file misses the cache, and its old entry is dropped when the new one is stored. The file is
rewritten whole (temporary file, then rename); one that cannot be read, fails its checksums or does not
hold what this layout says is reported in one warning and rebuilt.
"""
from __future__ import annotations

import hashlib
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import h5py
import numpy as np
import torch
from torch import nn

from ...atomic import atomic_path
from ..models.spec import InputSpec
from .source import Source

FORMAT, VERSION = "dhash-feature-cache", 1
VIEWS = ("plain", "flip")


def item_keys(source: Source, indices: Sequence[int] | np.ndarray) -> list[str]:
    """The cache key of each item: path + size + mtime for image files, data set fingerprint + index otherwise."""
    if source.paths is None:
        fingerprint = source.fingerprint()
        return [f"{fingerprint}:{int(i)}\t" for i in indices]
    keys = []
    for i in indices:
        path = os.path.abspath(source.paths[int(i)])
        try:
            stat = os.stat(path)
            stamp = f"{stat.st_size}:{stat.st_mtime_ns}"
        except OSError:
            stamp = "missing"  # fails to decode later; never matches a stored entry
        keys.append(f"{path}\t{stamp}")
    return keys


def backbone_digest(backbone: nn.Module, spec: InputSpec) -> str:
    """16 hex digits identifying a backbone's features: its class, every weight and buffer, its input spec."""
    digest = hashlib.sha256(f"{type(backbone).__name__}\n{spec}\n".encode())
    for name, tensor in backbone.state_dict().items():
        digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}\n".encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


class _Corrupt(Exception):
    """The cache file does not hold what the layout says."""


class FeatureCache:
    """One cache file: ``lookup`` what is there, ``store`` what was computed (see the module docstring)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.corrupt = False  # the file was found unreadable: it is not copied when rewritten

    def lookup(self, group: str, view: str, keys: Sequence[str]) -> tuple[np.ndarray | None, np.ndarray]:
        """Features of ``keys`` (rows of zeros where absent; None when nothing is cached) and which were found."""
        found = np.zeros(len(keys), dtype=bool)
        stored = self._read(group, view)
        if stored is None:
            return None, found
        stored_keys, features = stored
        row = {key: r for r, key in enumerate(stored_keys)}
        rows = np.array([row.get(key, -1) for key in keys], dtype=np.int64)
        found = rows >= 0
        out = np.zeros((len(keys), features.shape[1]), dtype=np.float32)
        out[found] = features[rows[found]]
        return out, found

    def store(self, group: str, attrs: Mapping[str, object], entries: Mapping[str, tuple[list[str], np.ndarray]]) -> None:
        """Add ``{view: (keys, features N × D)}`` to ``group``, replacing older entries of the same items."""
        merged = {}
        for view, (keys, features) in entries.items():
            items = {key.split("\t")[0] for key in keys}
            old = self._read(group, view)
            if old is not None:
                keep = [r for r, key in enumerate(old[0]) if key.split("\t")[0] not in items]
                keys = [old[0][r] for r in keep] + list(keys)
                features = np.concatenate([old[1][keep], features])
            merged[view] = (keys, np.asarray(features, dtype=np.float32))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(self.path) as tmp, h5py.File(tmp, "w") as out:
            out.attrs["format"], out.attrs["version"] = FORMAT, VERSION
            if self.path.exists() and not self.corrupt:
                with h5py.File(self.path, "r") as old_file:
                    for name in old_file:
                        if name != group:
                            old_file.copy(old_file[name], out, name)
                        else:
                            for view in set(old_file[name]) - set(merged):
                                out.require_group(name)
                                old_file.copy(old_file[name][view], out[name], view)
            g = out.require_group(group)
            g.attrs.update(dict(attrs))
            for view, (keys, features) in merged.items():
                v = g.create_group(view)
                v.create_dataset("keys", data=np.array(keys, dtype=object), dtype=h5py.string_dtype())
                v.create_dataset("features", data=features, chunks=(min(len(features), 1024) or 1, features.shape[1]),
                                 fletcher32=True)

    def _read(self, group: str, view: str) -> tuple[list[str], np.ndarray] | None:
        """The stored keys and features of a group's view, or None (absent, or the file is corrupt)."""
        if self.corrupt or not self.path.exists():
            return None
        try:
            with h5py.File(self.path, "r") as f:
                if f.attrs.get("format") != FORMAT or f.attrs.get("version") != VERSION:
                    raise _Corrupt("not a dhash feature cache")
                if group not in f or view not in f[group]:
                    return None
                node = f[group][view]
                keys, features = list(node["keys"].asstr()[()]), node["features"][()]
            if features.ndim != 2 or features.dtype != np.float32 or len(features) != len(keys):
                raise _Corrupt(f"{group}/{view} holds {len(keys)} keys and features {features.dtype} {features.shape}")
            if not np.isfinite(features).all():
                raise _Corrupt(f"{group}/{view} holds NaN or infinite features")
            return keys, features
        except (OSError, KeyError, ValueError, TypeError, _Corrupt) as exc:  # h5py: OSError for bad files/checksums
            reason = " ".join(str(exc).split())[:160] or type(exc).__name__
            warnings.warn(f"{self.path}: feature cache is corrupt or truncated ({reason}); rebuilding it", stacklevel=2)
            self.corrupt = True
            return None


__all__ = ["FeatureCache", "VIEWS", "backbone_digest", "item_keys"]
