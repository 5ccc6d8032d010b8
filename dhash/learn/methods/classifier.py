"""Classifier baseline: the backbone trained with cross-entropy only, codes from a linear bottleneck
that the classifier reads.

Not a hashing paper's method but the baseline such papers should beat (Sablayrolles, Douze, Usunier &
Jégou, "How should we evaluate supervised hashing?", ICASSP 2017, arXiv 1609.06753: a plain classifier
beats many supervised hashing methods on the classes it was trained on, and it is the reference that
the ``unseen`` protocol exposes). dhash's form, in the spirit of Lin et al.'s latent-layer codes
(CVPR Workshops 2015): the hash head gives K raw values h, the logits are a linear read-out ``h W + c``
of them (so the logits are a projection of the code space), the loss is cross-entropy (multi-label:
per-class BCE) and nothing else — no pair loss, no quantisation term — and the code is sgn(h).
"""
from __future__ import annotations

import torch
from torch import nn

from .base import TrainState
from .expo import classification_loss
from .pairs import PairMethod, Pairs


class Classifier(PairMethod):
    """Cross-entropy on a linear read-out of the K-bit hash-layer output; codes sgn(h)."""

    name = "classifier"
    paper = "Classifier baseline (Sablayrolles et al., How should we evaluate supervised hashing?, ICASSP 2017)"

    def __init__(self, bits: int, num_classes: int, params=None) -> None:
        super().__init__(bits, num_classes, params)
        self.readout = nn.Linear(bits, num_classes)

    def pair_loss(self, pairs: Pairs, state: TrainState) -> tuple[torch.Tensor, dict[str, float]]:
        # no pairs: the base gives the (global-batch) mean over the rows
        loss = classification_loss(self.readout(pairs.rows.h.float()), pairs.rows.labels, pairs)
        return loss, {"class": loss.item()}
