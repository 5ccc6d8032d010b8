"""DSH: contrastive pair loss on real-valued codes with an L1 pull towards ±1.

Liu, Wang, Shan & Chen, "Deep Supervised Hashing for Fast Image Retrieval", CVPR 2016.

Paper's parts: the relaxed per-pair loss (Eq. 3, from Eq. 1–2)
    L_r(b₁, b₂, y) = ½(1−y)‖b₁−b₂‖² + ½ y max(m − ‖b₁−b₂‖², 0) + α(‖|b₁|−1‖₁ + ‖|b₂|−1‖₁),
with the paper's convention y = 0 for similar and y = 1 for dissimilar pairs (dhash's s = 1 − y),
D = squared Euclidean distance, margin m = 2k (dissimilar codes should differ in ≥ k/2 bits),
α = 0.01; b is the raw linear output of the hash layer (no tanh), binarised by sign.
Pairs are all ordered pairs i ≠ j of a mini-batch (the paper generates them online from each batch),
averaged. ``batch_pair_loss`` is reused by HEGH (its Eq. 1 and 5 are DSH's).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch

from .base import Params, TrainState
from .pairs import PairMethod, Pairs


@dataclass
class DSHParams(Params):
    margin: float = field(default=2.0, metadata={"help": "margin m for dissimilar pairs as a multiple of bits (paper: m = 2k)"})
    alpha: float = field(default=0.01, metadata={"help": "weight α of the L1 regulariser ‖|b|−1‖₁ (paper: 0.01)"})


def squared_distances(b: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """‖b_i − c_j‖² for all pairs of rows (exact zeros where b_i = c_j)."""
    return (b.unsqueeze(1) - c.unsqueeze(0)).pow(2).sum(-1)


def pair_loss(d: torch.Tensor, s: torch.Tensor, margin: float) -> torch.Tensor:
    """Matrix of DSH pair losses ½ s D + ½ (1−s) max(m − D, 0) (Eq. 1 with y = 1 − s), D squared Euclidean."""
    return 0.5 * s * d + 0.5 * (1 - s) * torch.relu(margin - d)


def sign_regulariser(b: torch.Tensor) -> torch.Tensor:
    """‖|b_i| − 1‖₁ per row: the L1 pull of each code towards the vertices {−1, +1}^k."""
    return (b.abs() - 1).abs().sum(1)


def batch_pair_loss(
    pairs: Pairs, s: torch.Tensor, margin: float, weight: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(pair term, regulariser) of Eq. 3 averaged over the ordered pairs i ≠ j, on the raw outputs.

    ``weight`` optionally scales each pair's contrastive term (HEGH's (P₁P₂)^γ). The regulariser's
    mean over pairs of ‖|b_i|−1‖₁ + ‖|b_j|−1‖₁ equals twice its mean over images.
    """
    losses = pair_loss(squared_distances(pairs.rows.h, pairs.cols.h), s, margin)
    if weight is not None:
        losses = losses * weight
    return pairs.mean(losses, pairs.mask()), 2 * pairs.row_mean(sign_regulariser(pairs.rows.h))


class DSH(PairMethod):
    """Contrastive loss with margin 2k on raw outputs plus α‖|b|−1‖₁."""

    name = "dsh"
    paper = "Liu, Wang, Shan & Chen, Deep Supervised Hashing for Fast Image Retrieval, CVPR 2016"
    params_cls = DSHParams
    # The paper (Caffe, from scratch, ~280 epochs): SGD, momentum 0.9, weight decay 0.004, batch 200, lr 1e-3.
    # Not dhash's defaults: in dhash's short runs they learn far slower than Adam (1 epoch on 3,000
    # Fashion-MNIST images: mAP 0.33 vs 0.47); use --config to apply them.
    train_defaults: ClassVar[dict] = {}

    def pair_loss(self, pairs: Pairs, state: TrainState) -> tuple[torch.Tensor, dict[str, float]]:
        pair, reg = batch_pair_loss(pairs, pairs.similarity(), self.params.margin * self.bits)
        return pair + self.params.alpha * reg, {"pair": pair.item(), "reg": reg.item()}
