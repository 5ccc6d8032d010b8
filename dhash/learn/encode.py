"""Turning images into binary codes with a trained model (``dhash encode``).

``load_model`` rebuilds the network and method from a model file (``dhash.learn.run``); the ``Encoder``
runs it over a ``Source`` (with ``dhash.learn.runtime.forward_batches``) and packs the signs of
``method.project(h)`` into codes.
"""
from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console

from ..search.codes import CodeFile, pack_codes
from .data import ImageDataset, Source, build_transform, load_source
from ..errors import DHashError
from .frozen import cached_forward, model_cache
from .methods import get_method, parse_params
from .models import InputSpec
from .distributed import Processes, encode_shards
from .run import read_model
from .runtime import build_network, forward_batches, make_progress, resolve_device, set_cpu_threads

SPLITS = ("query", "database", "train", "all")


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class Encoder:
    """A trained model ready to encode: ``.bits``, ``.method``, ``.network``, ``.input_spec``, ``.record``."""

    def __init__(self, record: dict[str, Any], path: Path, device: torch.device) -> None:
        self.record, self.path, self.device = record, path, device
        try:
            self.bits = int(record["bits"])
            self.classes = list(record.get("classes", []))
            self.input_spec = InputSpec(**record["input_spec"])
            method_cls = get_method(record["method"])
            num_classes = int(record["num_classes"])
            params = parse_params(method_cls, record["params"])
            self.method = method_cls(self.bits, num_classes, params)
            backbone = record["backbone"]
            self.network = build_network(backbone["name"], backbone["options"], self.bits, method_cls, num_classes,
                                         params=params)
            self.network.load_state_dict(record["network"])
            self.method.load_state_dict(record["method_state"])
        except (RuntimeError, TypeError, KeyError, ValueError, AttributeError) as exc:  # DHashError: a ValueError
            raise DHashError(f"{path}: cannot rebuild the model ({' '.join(str(exc).split())[:300]})") from None
        self.network.to(device).eval()
        self.method.to(device).eval()
        self._sha256: str | None = None

    @property
    def sha256(self) -> str:
        """SHA-256 of the model file (provenance of the codes it writes)."""
        if self._sha256 is None:
            self._sha256 = file_sha256(self.path)
        return self._sha256

    def encode_tensor(self, x: torch.Tensor) -> np.ndarray:
        """Packed codes (uint8 N × ceil(bits/8)) of a batch of normalised images (``dhash serve`` uses it)."""
        with torch.inference_mode():
            return self._codes(self.network(x.to(self.device)))

    def _codes(self, out: Any) -> np.ndarray:
        return pack_codes(self.method.project(out.h.float()))

    def check_source(self, source: Source) -> None:
        """Refuse data the model cannot read (feature vectors for an image model, or the reverse)."""
        trained_on = self.record.get("data", {}).get("kind")
        if (source.kind == "features") != (trained_on == "features"):
            what = "feature vectors" if source.kind == "features" else "images"
            raise DHashError(f"{source.name}: holds {what}, but the model {self.path} was trained on {trained_on}")

    def matches(self, source: Source) -> bool:
        """Whether ``source`` is the data set the model was trained on (so its saved split applies)."""
        return self.record.get("data", {}).get("fingerprint") == source.fingerprint()

    def split_indices(self, source: Source, split: str) -> np.ndarray:
        """Indices into ``source`` of a part of the run's saved split (``all``: every item)."""
        if split not in SPLITS:
            raise DHashError(f"unknown split '{split}' (choose from: {', '.join(SPLITS)})")
        if split == "all":
            return np.arange(len(source), dtype=np.int64)
        if not self.matches(source):
            data = self.record.get("data", {}).get("spec", "?")
            raise DHashError(
                f"{source.name}: not the data the model {self.path} was trained on ({data}); "
                f"--split {split} needs that data (use --split all for other data)"
            )
        if "split" not in self.record:
            raise DHashError(f"{self.path}: the model file has no saved split; use --split all")
        indices = self.record["split"][split].numpy().astype(np.int64)
        if len(indices) and indices.max() >= len(source):
            raise DHashError(f"{self.path}: split.{split} holds item {indices.max()}, but {source.name} has {len(source)}")
        return indices

    def load_data(self, data: str | None = None, data_dir: str | None = None) -> Source:
        """The run's data set (``data`` overrides where it is found)."""
        saved = self.record.get("data", {})
        spec = data or saved.get("path") or saved.get("spec")
        if spec is None:
            raise DHashError(f"{self.path}: the model file does not say which data it was trained on; give the data")
        return load_source(spec, data_dir or saved.get("data_dir"))

    def encode_source(self, source: Source, indices: Sequence[int] | np.ndarray | None = None, batch_size: int = 256,
                      progress: bool = False, strict: bool = False, workers: int = 0, threads: int | None = None,
                      split: str | None = None, console: Console | None = None,
                      processes: Processes = Processes(), use_cache: bool = True) -> CodeFile:
        """Encode ``source[indices]`` (all items by default) into a ``CodeFile`` with labels, ids and provenance.

        Unreadable images are skipped and listed in ``attrs["unreadable"]`` (an error if ``strict``).
        Under torchrun (``processes``) each process encodes a contiguous share and every process
        returns the whole file, in item order (progress shows rank 0's share). A model trained with a
        frozen backbone reads and extends its feature cache, unless not ``use_cache`` or several processes run.
        """
        self.check_source(source)
        idx = np.arange(len(source), dtype=np.int64) if indices is None else np.asarray(indices, dtype=np.int64)
        if self.device.type == "cpu":
            set_cpu_threads(threads)
        cache = (model_cache(self.record, self.path)
                 if use_cache and processes.world == 1 and source.kind != "features" else None)

        def encode(share: slice) -> tuple[list[np.ndarray], list[np.ndarray], list[tuple[int, str]]]:
            part = idx[share]
            codes, kept, failures = [], [], []
            description = f"Encoding {split or 'items'}"
            try:
                with make_progress(progress and processes.main, console) as bar:
                    if cache is not None:
                        batches = cached_forward(self.network, source, part, cache, self.device, batch_size, workers,
                                                 failures, bar, description)
                    else:
                        dataset = ImageDataset(source, part, build_transform(self.input_spec, train=False))
                        batches = forward_batches(self.network, dataset, self.device, batch_size, workers, failures,
                                                  bar, description)
                    for positions, out in batches:
                        codes.append(self._codes(out))
                        kept.append(positions.numpy() + share.start)
            except RuntimeError as exc:
                raise DHashError(
                    f"{source.name}: the data does not fit the model {self.path} ({' '.join(str(exc).split())[:200]})"
                ) from None
            return codes, kept, [(p + share.start, reason) for p, reason in failures]

        shares = encode_shards(processes, len(idx), encode)
        codes = [c for share in shares for c in share[0]]
        kept = [k for share in shares for k in share[1]]
        failures = [f for share in shares for f in share[2]]
        if strict and failures:
            position, reason = failures[0]
            raise DHashError(f"{source.ids[idx[position]]}: unreadable image ({reason})")
        width = (self.bits + 7) // 8
        kept_idx = idx[np.concatenate(kept)] if kept else np.zeros(0, dtype=np.int64)
        attrs: dict[str, Any] = {
            "method": self.record["method"], "model": str(self.path), "model_sha256": self.sha256,
            "dataset": source.name, "split": split or ("all" if indices is None else "subset"),
        }
        if source.labels is not None and source.classes:
            attrs["classes"] = list(source.classes)
        if failures:
            attrs["unreadable"] = [f"{source.ids[idx[p]]} ({reason})" for p, reason in failures]
        return CodeFile(
            codes=np.concatenate(codes) if codes else np.zeros((0, width), dtype=np.uint8),
            bits=self.bits,
            labels=None if source.labels is None else source.labels[kept_idx],
            ids=[source.ids[i] for i in kept_idx],
            attrs=attrs,
        )


def load_model(path: str | os.PathLike, device: str = "auto") -> Encoder:
    """Load a model file (``model.pt`` of a run) onto ``device`` (auto: CUDA when available)."""
    p = Path(path)
    return Encoder(read_model(p), p, resolve_device(device))


def encode_image_files(model_path: str | os.PathLike, paths: Sequence[str | os.PathLike],
                       device: str = "auto") -> tuple[np.ndarray, int]:
    """Codes of image files, in order (for ``dhash query --image``); an unreadable file is an error."""
    files = [str(p) for p in paths]
    for f in files:
        if not os.path.isfile(f):
            raise DHashError(f"{f}: no such image file")
    encoder = load_model(model_path, device)
    source = Source(name="images", paths=files, ids=files)
    return encoder.encode_source(source, strict=True, use_cache=False).codes, encoder.bits


def encode_run_splits(model_path: str | os.PathLike, data: str | None = None, device: str = "auto",
                      progress: bool = False) -> tuple[CodeFile, CodeFile]:
    """Encode the query and database parts of the run's saved split (for ``dhash evaluate --model``).

    ``data`` is where the run's data set is found, when not where it was at training time.
    """
    encoder = load_model(model_path, device)
    source = encoder.load_data(data)
    return tuple(  # type: ignore[return-value]
        encoder.encode_source(source, encoder.split_indices(source, part), progress=progress, split=part)
        for part in ("query", "database")
    )


__all__ = ["Encoder", "SPLITS", "encode_image_files", "encode_run_splits", "load_model"]
