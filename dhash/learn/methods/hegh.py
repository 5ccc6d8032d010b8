"""HEGH: hard-example-guided hashing — DSH's pair loss reweighted by classifier-estimated hardness.

Su, Han, Liang, Liang & Yu, "Hard Example Guided Hashing for Image Retrieval", arXiv 2112.13565 (2021).

Paper's parts:
- network "CNNs with CBAM" (Section 3.2): dhash's ``cbam-cnn`` backbone, the default here
  (``default_backbone``); the ``--no-cbam`` ablation is that backbone with ``cbam=False``;
- hard mining layer (Section 3.3): a classification head whose confidence p gives each image of a
  pair a hardness P (Eq. 3); hard pair loss Σ (P₁P₂)^γ L_pair (Eq. 4) with DSH's pair loss (Eq. 1,
  reused from ``dsh``; m_c = 2k, squared Euclidean distance as in DSH) and the L1 regulariser
  λ(‖|b₁|−1‖₁ + ‖|b₂|−1‖₁), λ = 0.01 (Eq. 5; its ‖|b| − sgn(b)‖₁ read as ‖b − sgn(b)‖₁ = ‖|b| − 1‖₁,
  DSH's regulariser); classification loss Σ_i Σ_c (y_ic − p_ic)² (Eq. 2); L = L'_hard + μ L_class,
  μ = 1 (Eq. 6); γ = 1 (Table 4). With γ = 0 the hard loss is exactly DSH's loss.

Reading of Eq. 3 (its Y convention is Eq. 1's, Y = 1 dissimilar, which agrees with the prose): P is per image, p is "the confidence from
the output of the classification layer" for that image, taken as its probability of its own label
(the mean over its labels when it has several), and, as Section 3.3 (1) says,
    P = 1 − p for similar pairs (low confidence = hard),  P = p for dissimilar pairs (high confidence = hard).
Eq. 3 gives exactly this when read with Eq. 1's convention (Y = 1 dissimilar). (Taking p as an image's
belief in its partner's label instead makes dissimilar weights vanish quadratically as the classifier
improves, and the codes collapse to a single one on Fashion-MNIST.)

Where the classifier sits (Section 3.1, Fig. 2): "a full connection layer [...] is added at the end to
assist binary-like output", as in DSDH — a linear layer on the binary-like outputs b, so that Eq. 2's
classification loss shapes the codes and the confidences p of Eq. 3–4 are those of a classifier that
reads the codes. That is the default (``classifier=codes``); ``classifier=features`` puts it on the
backbone features beside the hash layer (dhash's placement before 2026-12-06), where Eq. 2 trains the
backbone but not the hash layer. Measured (README, "HEGH's classifier placement"): on a reduced
Fashion-MNIST run the paper's placement scored lower (mAP@1000 0.61 vs 0.69).
Ablation (README, "HEGH ablation"; per-class Fashion-MNIST, 32 bits, 3 seeds): γ = 1 0.603, γ = 0.5 0.715,
γ = 0 0.769 mAP@all, DSH 0.803: the hardness weighting lowers mAP at every γ > 0 tried.

dhash's choices: per-label sigmoid probabilities (labels are multi-hot; NUS-WIDE in the paper is
multi-label); P is a weight, so no gradient flows through it (the classifier learns from Eq. 2);
the paper's N_p random pairs are all pairs i ≠ j of the batch, and its sums are means
(pairs for L'_hard, images for L_class).

Option ``normalise`` (dhash's, off by default): divide the weights (P₁P₂)^γ of the similar pairs by
their batch mean, and those of the dissimilar pairs by theirs. As printed, while the classifier is
still unsure (p ≈ 1/C) every dissimilar weight is ≈ 1/C², the pull of similar pairs wins and the codes
can collapse to one; normalised, hardness only reorders emphasis within each kind. On Fashion-MNIST
(32 bits, cbam-cnn) the printed form is better once training runs for epochs (mAP after 1 / 3
epochs: 0.72 / 0.82 printed, 0.69 / 0.77 normalised; γ = 0: 0.77 / 0.83), the normalised one only in
runs of a few dozen steps (small-cnn, 23 steps: 0.45 normalised, 0.14 printed with 4 distinct codes).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch

from torch import nn

from ...errors import DHashError
from .base import Params, TrainState
from .dsh import batch_pair_loss
from .pairs import PairMethod, Pairs


@dataclass
class HEGHParams(Params):
    gamma: float = field(default=1.0, metadata={"help": "focusing exponent γ of the hardness weight (P₁P₂)^γ (paper: 1, tuned at 12 bits; 0.5 did better at 32 bits on Fashion-MNIST; 0 = plain DSH pair loss)"})
    margin: float = field(default=2.0, metadata={"help": "margin m_c for dissimilar pairs as a multiple of bits (paper: m_c = 2k)"})
    lam: float = field(default=0.01, metadata={"help": "weight λ of the L1 regulariser ‖|b|−1‖₁ (paper: 0.01, Eq. 5)"})
    mu: float = field(default=1.0, metadata={"help": "weight μ of the classification loss (paper: 1, Eq. 6)"})
    classifier: str = field(default="codes", metadata={"help": "where the classification layer sits: codes (paper, Section 3.1: on the binary-like outputs b) or features (on the backbone features beside the hash layer)"})
    normalise: bool = field(default=False, metadata={"help": "rescale the weights of similar and of dissimilar pairs to mean 1 in each batch (dhash's option for very short runs; false = Eq. 4 as printed)"})


def own_confidence(probs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """p_i = the classifier's mean probability of image i's own labels (its true-class probability when single-label)."""
    return (probs * labels).sum(1) / labels.sum(1).clamp_min(1)


def normalise_per_kind(weight: torch.Tensor, s: torch.Tensor, mask: torch.Tensor, pairs: Pairs | None = None) -> torch.Tensor:
    """``weight`` divided by its mean over the masked similar pairs (where s = 1) and over the dissimilar
    ones (over the global batch with ``pairs``)."""
    total = (lambda x: x.sum()) if pairs is None else pairs.count
    out = torch.zeros_like(weight)
    for kind in (s, 1 - s):
        sel = kind * mask
        out = out + sel * weight / (total(weight * sel) / total(sel).clamp_min(1)).clamp_min(1e-12)
    return out


def hardness(probs: torch.Tensor, labels: torch.Tensor, s: torch.Tensor, column: bool = False) -> torch.Tensor:
    """P_ij, the hardness of image i in pair (i, j) (Eq. 3 as read above): 1 − p_i if similar, p_i if
    dissimilar; with ``column`` the images are the columns j (P_ji)."""
    p = own_confidence(probs, labels.to(probs.dtype))
    p = p.unsqueeze(0) if column else p.unsqueeze(1)
    return s * (1 - p) + (1 - s) * p


class HEGH(PairMethod):
    """Hardness-weighted DSH pair loss + L1 regulariser + squared-error classification loss."""

    name = "hegh"
    paper = "Su, Han, Liang, Liang & Yu, Hard Example Guided Hashing for Image Retrieval, arXiv:2112.13565, 2021"
    params_cls = HEGHParams
    needs_classifier = True
    default_backbone: ClassVar[str] = "cbam-cnn"  # the paper's "CNNs with CBAM"; --no-cbam → cbam=False
    # the paper gives no optimiser settings; 12 epochs (dhash's choice): the CBAM CNN is 2.3x slower than
    # small-cnn, so this fits the 10-minute budget of 28 small-cnn epochs on 2 cores. Full protocol, 32 bits,
    # 3 seeds: 12 epochs 0.875 ± 0.003 mAP@all, `--epochs 20` 0.881 ± 0.004 (README, full-protocol table)
    train_defaults: ClassVar[dict] = {"epochs": 12}
    placements: ClassVar[tuple[str, ...]] = ("codes", "features")

    def __init__(self, bits: int, num_classes: int, params: HEGHParams | None = None) -> None:
        super().__init__(bits, num_classes, params)
        if self.params.classifier not in self.placements:
            raise DHashError(f"--param classifier={self.params.classifier}: choose from {', '.join(self.placements)}")
        self.readout = nn.Linear(bits, num_classes) if self.params.classifier == "codes" else None

    @classmethod
    def network_classifier(cls, params: HEGHParams) -> bool:
        return params.classifier == "features"

    def _logits(self, h: torch.Tensor, logits: torch.Tensor | None) -> torch.Tensor:
        """Classification logits: the read-out of the codes, or the network's head on the features."""
        if self.readout is not None:
            return self.readout(h)
        if logits is None:
            raise DHashError("hegh with classifier=features needs a classification head: build the network with num_classes")
        return logits

    def pair_loss(self, pairs: Pairs, state: TrainState) -> tuple[torch.Tensor, dict[str, float]]:
        rows, cols = pairs.rows, pairs.cols
        p = self.params
        labels = rows.labels.to(rows.h.dtype)
        probs = torch.sigmoid(self._logits(rows.h, rows.logits))
        s = pairs.similarity()
        with torch.no_grad():
            col_probs = probs if cols is rows else torch.sigmoid(self._logits(cols.h, cols.logits))
            weight = (hardness(probs, labels, s) * hardness(col_probs, cols.labels, s, column=True)).pow(p.gamma)
            if p.normalise:
                weight = normalise_per_kind(weight, s, pairs.mask().to(s.dtype), pairs)
        pair, reg = batch_pair_loss(pairs, s, p.margin * self.bits, weight)
        cls = pairs.row_mean((labels - probs).pow(2).sum(1))
        parts = {"pair": pair.item(), "reg": reg.item(), "class": cls.item()}
        return pair + p.lam * reg + p.mu * cls, parts
