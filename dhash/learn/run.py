"""A run folder (``dhash train -o runs/x``) and the model file.

Contents of the folder:
  config.json    the effective config (``dhash.learn.settings``), written when the run starts
  split.npz      the train / query / database indices (``dhash.learn.data.Split``)
  metrics.jsonl  one JSON object per epoch (epoch, loss and its parts, lr, seconds, images_per_s, and
                 processes when several trained),
                 then one ``{"post_train": {...}}`` line when the method has a post-training step
  checkpoint.pt  the state after the last finished epoch (network, method, optimiser, scheduler,
                 grad scaler, epoch, step), replaced atomically every epoch
  model.pt       the trained model (``MODEL_FORMAT``): plain Python values and tensors only, so it
                 loads with ``torch.load(path, weights_only=True)``
  features.h5    ``--backbone-mode frozen``: the feature cache (``dhash.learn.data.feature_cache``)

Random state is not stored: every epoch reseeds its shuffling and augmentation from ``(seed, epoch)``,
so a resumed run repeats exactly what an uninterrupted one does.
"""
from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..atomic import atomic_path
from ..errors import DHashError

MODEL_FORMAT = "dhash-model"
MODEL_FORMAT_VERSION = 1
CHECKPOINT_FORMAT = "dhash-checkpoint"
# what the readers use of each file, and its type (a loaded file of other types is refused in one line)
MODEL_FIELDS = {"method": str, "params": dict, "bits": int, "num_classes": int, "backbone": dict, "network": dict,
                "method_state": dict, "input_spec": dict}
MODEL_OPTIONAL = {"classes": list, "data": dict, "split": dict}
CHECKPOINT_FIELDS = {"network": dict, "method": dict, "optimizer": dict, "scheduler": dict, "scaler": dict,
                     "epoch": int, "step": int, "seconds": (int, float)}
CHECKPOINT_OPTIONAL = {"best": (dict, type(None)), "since_best": int}
SPLIT_PARTS = ("train", "query", "database")


def plain(value: Any) -> Any:
    """``value`` with NumPy scalars and arrays turned into Python numbers and tensors (safe for ``weights_only``)."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(plain(v) for v in value)
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(value))
    if isinstance(value, np.generic):
        return value.item()
    return value


def save_torch(obj: Any, path: Path) -> None:
    """``torch.save`` atomically (temporary file, then rename)."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def load_torch(path: Path, what: str) -> dict[str, Any]:
    """``torch.load(weights_only=True)`` on the CPU, with a one-line error naming the file."""
    if not path.is_file():
        raise DHashError(f"{path}: no such {what}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is a user error
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise DHashError(f"{path}: not a readable dhash {what} ({reason})") from None
    if not isinstance(obj, dict):
        raise DHashError(f"{path}: not a dhash {what}")
    return obj


class Run:
    """The files of one run folder."""

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)
        self.config = self.folder / "config.json"
        self.split = self.folder / "split.npz"
        self.metrics = self.folder / "metrics.jsonl"
        self.checkpoint = self.folder / "checkpoint.pt"
        self.model = self.folder / "model.pt"
        self.last = self.folder / "last.pt"  # the last epoch, when validation kept an earlier one as model.pt

    def check_new(self) -> None:
        """Refuse to start a new run over an existing one."""
        if self.folder.exists() and not self.folder.is_dir():
            raise DHashError(f"{self.folder}: exists and is not a folder")
        existing = [p.name for p in (self.config, self.checkpoint, self.model) if p.exists()]
        if existing:
            raise DHashError(
                f"{self.folder}: already holds a run ({', '.join(existing)}); "
                "continue it with --resume or choose another -o folder"
            )

    def read_config(self) -> dict[str, Any]:
        """The saved effective config (for ``--resume``)."""
        if not self.config.is_file():
            raise DHashError(f"{self.folder}: no run to resume here (no config.json)")
        try:
            config = json.loads(self.config.read_text())
        except (OSError, ValueError) as exc:
            raise DHashError(f"{self.config}: unreadable run config ({exc})") from None
        if not isinstance(config, dict):
            raise DHashError(f"{self.config}: not a run config")
        return config

    def write_config(self, config: dict[str, Any]) -> None:
        with atomic_path(self.config) as tmp:
            tmp.write_text(json.dumps(config, indent=2) + "\n")

    def log(self, record: dict[str, Any]) -> None:
        """Append one JSON line to the metrics log."""
        self.folder.mkdir(parents=True, exist_ok=True)
        with self.metrics.open("a") as f:
            f.write(json.dumps(record) + "\n")

    def trim_metrics(self, epochs: int) -> None:
        """Keep only the log lines of the first ``epochs`` epochs (when resuming from a checkpoint)."""
        if not self.metrics.exists():
            return
        lines = self.metrics.read_text().splitlines()
        keep = [line for line in lines if line.strip() and json.loads(line).get("epoch", epochs + 1) <= epochs]
        with atomic_path(self.metrics) as tmp:
            tmp.write_text("".join(line + "\n" for line in keep))

    def save_checkpoint(self, state: dict[str, Any]) -> None:
        save_torch({"format": CHECKPOINT_FORMAT, **state}, self.checkpoint)

    def load_checkpoint(self) -> dict[str, Any] | None:
        """The last checkpoint, or None when the run has none yet."""
        if not self.checkpoint.exists():
            return None
        state = load_torch(self.checkpoint, "checkpoint")
        if state.get("format") != CHECKPOINT_FORMAT:
            raise DHashError(f"{self.checkpoint}: not a dhash checkpoint")
        check_fields(state, CHECKPOINT_FIELDS, self.checkpoint, "checkpoint")
        check_fields(state, CHECKPOINT_OPTIONAL, self.checkpoint, "checkpoint", required=False)
        if state["epoch"] < 0 or state["step"] < 0:
            raise DHashError(f"{self.checkpoint}: negative epoch or step in the checkpoint")
        return state


def save_model(path: Path, record: dict[str, Any]) -> None:
    """Write the model file atomically (``record`` as built by ``dhash.learn.train``)."""
    save_torch(plain({"format": MODEL_FORMAT, "format_version": MODEL_FORMAT_VERSION, **record}), path)


def read_model(path: str | os.PathLike) -> dict[str, Any]:
    """Load and check a model file (``weights_only=True``)."""
    p = Path(path)
    record = load_torch(p, "model file")
    if record.get("format") != MODEL_FORMAT:
        raise DHashError(f"{p}: not a dhash model file (a checkpoint? use the run's model.pt)")
    if record.get("format_version") != MODEL_FORMAT_VERSION:
        raise DHashError(f"{p}: unsupported model format_version {record.get('format_version')} (this dhash reads {MODEL_FORMAT_VERSION})")
    check_fields(record, MODEL_FIELDS, p, "model file")
    check_fields(record, MODEL_OPTIONAL, p, "model file", required=False)
    backbone = record["backbone"]
    if not isinstance(backbone.get("name"), str) or not isinstance(backbone.get("options", {}), dict):
        raise DHashError(f"{p}: model file has a malformed backbone (expected a name and options)")
    for part in SPLIT_PARTS if "split" in record else ():
        idx = record["split"].get(part)
        if not (isinstance(idx, torch.Tensor) and idx.ndim == 1 and not idx.is_floating_point()
                and not idx.is_complex() and (idx.numel() == 0 or int(idx.min()) >= 0)):
            raise DHashError(f"{p}: model file's split.{part} is not a list of item indices")
    return record


def check_fields(record: dict[str, Any], fields: dict[str, Any], path: Path, what: str, required: bool = True) -> None:
    """Each of ``fields`` is in ``record`` (unless not ``required``) with the given type; bools are not ints."""
    missing = [k for k in fields if k not in record] if required else []
    if missing:
        raise DHashError(f"{path}: {what} lacks {', '.join(missing)}")
    for key, kind in fields.items():
        value = record.get(key)
        if key in record and (not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool)):
            raise DHashError(f"{path}: {what} field '{key}' has the wrong type ({type(value).__name__})")


def kept_epoch(path: str | os.PathLike) -> dict[str, Any]:
    """Which epoch a model file holds: ``kept_epoch``, ``trained_epochs`` and, when validation chose
    it, ``validation_map``; empty for closed-form methods (no epochs)."""
    training = read_model(path)["training"]
    if not training["epochs"]:
        return {}
    selected = training.get("selected")  # absent in models from before validation
    if not selected:
        return {"kept_epoch": training["epochs"], "trained_epochs": training["epochs"]}
    return {"kept_epoch": selected["epoch"], "trained_epochs": training["epochs"], "validation_map": selected["val_map"]}
