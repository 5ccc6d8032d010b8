"""The interface every hashing method implements, and the parsing of its hyper-parameters.

A method is an ``nn.Module`` so that whatever it learns besides the network (SDSH's rotation,
ITQ's projection) lives in buffers and is saved with the model. The network gives the raw
hash-layer output ``h`` (pre-activation, ``B × bits``) and, when the method needs one,
classification ``logits``; the method turns them into a loss, and ``project(h)`` into real values
whose signs are the code bits (bit 1 where the value is > 0, see ``dhash.codes``).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from ...errors import DHashError


@dataclass
class NetOutput:
    """What a hashing network returns for a batch."""

    h: torch.Tensor  # raw hash-layer output, B × bits (pre-activation)
    logits: torch.Tensor | None = None  # B × C, when the method needs a classifier head


@dataclass
class TrainState:
    """Where training stands, for losses with schedules."""

    epoch: int  # 0-based
    epochs: int
    step: int  # global optimisation step, 0-based
    steps_per_epoch: int
    items: torch.Tensor | None = None  # the batch's positions in the training set (0..N−1), int64


@dataclass
class Params:
    """Base of each method's hyper-parameter dataclass (defaults = the paper's values)."""


class Method(nn.Module):
    """A hashing method: the paper's loss and how raw network outputs become codes.

    Class attributes a method sets:
      name: registry name (``--method``); paper: citation line; params_cls: its ``Params`` dataclass;
      needs_classifier: the method uses a classifier (``network_classifier`` says whether the network must provide ``logits``); trainable: False for closed-form methods
      (LSH, ITQ) that implement ``fit`` instead of ``loss``; uses_hash_head: False when codes come
      straight from backbone features (LSH, ITQ);
      train_defaults: training settings the paper recommends, applied unless the user sets them.
    """

    name: ClassVar[str] = ""
    paper: ClassVar[str] = ""
    params_cls: ClassVar[type[Params]] = Params
    needs_classifier: ClassVar[bool] = False
    trainable: ClassVar[bool] = True
    uses_hash_head: ClassVar[bool] = True
    train_defaults: ClassVar[dict[str, Any]] = {}  # the paper's optimiser settings (e.g. {"lr": 0.07}) used unless overridden

    def __init__(self, bits: int, num_classes: int, params: Params | None = None) -> None:
        super().__init__()
        self.bits = bits
        self.num_classes = num_classes
        self.params = params if params is not None else self.params_cls()

    def loss(self, out: NetOutput, labels: torch.Tensor, state: TrainState) -> tuple[torch.Tensor, dict[str, float]]:
        """Return the scalar loss for a batch (``labels`` multi-hot float, B × C) and its named parts."""
        raise NotImplementedError(f"{self.name} has no gradient loss")

    @classmethod
    def network_classifier(cls, params: Params) -> bool:
        """Whether the network needs a classification head on the backbone features (``logits``) for
        ``params``. Default: ``needs_classifier``."""
        return cls.needs_classifier

    def begin_training(self, labels: torch.Tensor) -> None:
        """Called before gradient training with the labels of all N training items (N × C, float, on the
        training device), for losses that pair each batch with the whole training set (DPSH). Default: nothing."""

    def project(self, h: torch.Tensor) -> torch.Tensor:
        """Map raw outputs (or features) to real values whose sign gives the bits. Default: identity."""
        return h

    def fit(self, features: np.ndarray, labels: np.ndarray, seed: int) -> None:
        """Closed-form fitting on training features (LSH, ITQ)."""
        raise NotImplementedError(f"{self.name} is trained by gradient descent, not fit()")

    def post_train(self, h: np.ndarray, labels: np.ndarray, seed: int, progress: bool = False) -> dict[str, float]:
        """Optional step after training on the raw training outputs (SDSH's rotation); returns a report."""
        return {}


def parse_params(method: type[Method], pairs: dict[str, Any]) -> Params:
    """Build a method's ``Params`` from ``{name: value}`` (values may be strings from the CLI)."""
    fields = {f.name: f for f in dataclasses.fields(method.params_cls)}
    values = {}
    for key, raw in pairs.items():
        key_ = key.replace("-", "_")
        if key_ not in fields:
            known = ", ".join(sorted(fields)) or "none"
            raise DHashError(f"--param {key}: unknown parameter for method '{method.name}' (known: {known})")
        default = fields[key_].default
        typ = type(default) if default is not dataclasses.MISSING and default is not None else float
        try:
            if typ is bool and isinstance(raw, str):
                if raw.lower() not in ("1", "0", "true", "false", "yes", "no"):
                    raise ValueError(raw)
                values[key_] = raw.lower() in ("1", "true", "yes")
            else:
                values[key_] = typ(raw)
        except (TypeError, ValueError):
            raise DHashError(f"--param {key}={raw}: expected a {typ.__name__}") from None
    return method.params_cls(**values)


def describe_params(method: type[Method]) -> list[tuple[str, Any, str]]:
    """``(name, default, help)`` for each hyper-parameter; help comes from ``field(metadata={"help": ...})``."""
    return [
        (f.name, f.default, f.metadata.get("help", ""))
        for f in dataclasses.fields(method.params_cls)
    ]
