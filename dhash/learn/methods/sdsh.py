"""Spherical embedding with the spring loss and a rotation search — Pidhorskyi et al., "Deep
Supervised Hashing with Spherical Embedding", ACCV 2018 (poster; details from the authors' code,
see ``../shared/papers/NOTES.md``).

The paper's: the linear hash-layer output is L2-normalised onto the unit sphere, with no
binarisation term; the spring loss over all in-batch triplets (q, p, n), p similar to q (p = q
allowed) and n dissimilar: ``Δ = ‖q − p‖² − ‖q − n‖² ∈ [−4, 4]``,
``E = (2√2 − √(4 − Δ))²``, averaged over the valid triplets (E = 0 only when p = q and n = −q);
after training, the rotation ``R = argmax mAP(R)`` found by greedy random search on training
outputs (``dhash.methods.rotation``); codes ``b = sgn(h R)``, exact zeros → bit 0. The authors
train with plain SGD, lr 0.07 decayed by 2/3 every few epochs, batches of 100–150.

dhash's choices: the triplets are evaluated as one B × B × B tensor (fine for B ≤ ~256); the
trainer's Adam (lr 10⁻³, cosine decay, batches of 128) instead of the authors' SGD — on Fashion-MNIST
at 32 bits, 25 epochs, it reaches mAP 0.903 against the SGD's 0.852 (a ``--config`` file with
``optimizer = "sgd"``, ``lr = 0.07``, ``momentum = 0.0``, ``lr_decay = "step"``, ``lr_gamma = 0.6667``
restores the authors'); the random 2-plane construction of ``rotation.py``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import torch
from torch.nn import functional as F

from .base import Params, TrainState
from .pairs import PairMethod, Pairs
from .rotation import search_rotation


def spring_loss(pairs: Pairs) -> tuple[torch.Tensor, int]:
    """Mean spring energy over the valid triplets (q a row, p and n columns of ``pairs``) of the
    outputs normalised to unit vectors; also their number."""
    z, y = pairs.both(lambda h: F.normalize(h, dim=1))
    sq = (2 - 2 * z @ y.T).clamp(0.0, 4.0)  # ‖a − b‖² of unit vectors
    sim = pairs.similarity() > 0
    valid = sim[:, :, None] & ~sim[:, None, :]  # [q, p, n]: p similar (p = q allowed), n dissimilar
    count = pairs.count(valid)
    if count == 0:
        return pairs.sum(z) * 0.0, 0
    delta = sq[:, :, None] - sq[:, None, :]
    energy = (2 * math.sqrt(2) - torch.sqrt((4 - delta).clamp_min(1e-12))) ** 2
    return pairs.sum(energy * valid) / count, int(count)


@dataclass
class SDSHParams(Params):
    rotation_steps: int = field(default=800, metadata={"help": "steps of the rotation search after training (0 = no rotation)"})
    rotation_queries: int = field(default=2000, metadata={"help": "training items used as queries by the rotation search"})
    rotation_database: int = field(default=16000, metadata={"help": "training items used as the database by the rotation search"})


class SDSH(PairMethod):
    """Unit-sphere embedding trained with the triplet spring loss; codes ``sgn(normalise(h) R)``."""

    name = "sdsh"
    paper = "Pidhorskyi et al., Deep Supervised Hashing with Spherical Embedding, ACCV 2018"
    params_cls = SDSHParams
    # 25 epochs (dhash's choice) leave room for the rotation search in 10 minutes
    train_defaults: ClassVar[dict] = {"epochs": 25}

    def __init__(self, bits: int, num_classes: int, params: Params | None = None) -> None:
        super().__init__(bits, num_classes, params)
        self.register_buffer("rotation", torch.eye(bits))

    def pair_loss(self, pairs: Pairs, state: TrainState) -> tuple[torch.Tensor, dict[str, float]]:
        loss, count = spring_loss(pairs)
        return loss, {"spring": loss.item(), "triplets": float(count)}

    def project(self, h: torch.Tensor) -> torch.Tensor:
        return F.normalize(h, dim=1) @ self.rotation.to(h)

    def post_train(self, h: np.ndarray, labels: np.ndarray, seed: int, progress: bool = False) -> dict[str, float]:
        p = self.params
        rot, report = search_rotation(
            h, labels, p.rotation_steps, p.rotation_queries, p.rotation_database, seed=seed, progress=progress
        )
        self.rotation.copy_(torch.from_numpy(rot))
        return report
