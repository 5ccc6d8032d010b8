"""DHA and DHA-t: deep hashing with an adaptive (scaled, shifted, focal, class-balanced) pair loss.

Xu, Guo, Liu, Qin, Wang & Liu, "DHA: Supervised Deep Learning to Hash with an Adaptive Loss
Function", ICCV Workshops 2019.

Paper's parts:
- relaxed codes h = tanh(raw) (Section 3.2.2) and inner products z = ⟨h_i, h_j⟩ (Eq. 2–3);
- adaptive sigmoid σ(z) = 1 / (1 + e^{−α(z−θ)}) with α = 10/K (Eq. 5), θ = 0 for dissimilar
  pairs and θ > 0 for similar pairs;
- focal weighting (1 − p)^γ with γ = 2 on the pair likelihood of Eq. 4 (Eq. 6);
- class balance ω = β for similar, 1 − β for dissimilar pairs (Eq. 7); the paper's β = 11/12, 6/7, 2/3
  for dissimilar:similar ratios r ≈ 10, 5, 1 (Section 4.2) are exactly β = (r+1)/(r+2); adaptive loss L(H) = Σ −ω[s(1−σ)^γ log σ + (1−s)σ^γ log(1−σ)] (Eq. 8);
- quantisation loss Q(H) = Σ_i Σ_k (1/K)(1 − e^{|h_ik|−1}) (Eq. 9), objective L + λQ (Eq. 1);
- DHA-t: continuous similarity t_ij = cos(y_i, y_j) (Eq. 10) steering θ (Section 3.3.2).

dhash's choices (all exposed as parameters):
- θ for similar pairs = K/2 (``theta=0.5``): p = 0.5 is reached at Hamming distance K/4 and p only
  saturates (α(z−θ) ≈ 5) when the codes coincide, so similar pairs keep a gradient until d_H → 0.
- β = (r+1)/(r+2) from each batch's pair counts (``beta=0``): the paper's rule without knowing the
  dataset in advance (r/(r+1) would give 1/2 on balanced multi-label data: the paper's DHA-W ablation).
- DHA-t's θ(t) = θ·K·t for t > 0 and 0 for t = 0: linear in t, so t → 1 gives DHA's similar θ
  (case 1a), small t a small θ (case 1b), and dissimilar pairs keep DHA's θ = 0 (case 2);
  the pair target is s = [t > 0], as the paper maximises p(s=1) exactly when t > 0.
- λ = 0.1 (the paper gives none; on Fashion-MNIST after 150 steps λ = 0.01 / 0.1 / 1 give mAP
  0.70 / 0.69 / 0.50: 1 lets Q drown the pair loss, 0.1 keeps the codes nearer ±1, which the paper's
  ablation finds matters). Sums become means: L over the batch's pairs i ≠ j, Q over its images, so
  λ does not depend on the batch size.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch
import torch.nn.functional as F

from .base import Params, TrainState
from .pairs import PairMethod, Pairs


@dataclass
class DHAParams(Params):
    alpha_scale: float = field(default=10.0, metadata={"help": "sigmoid bandwidth α = alpha_scale / bits (paper: 10/K, Eq. 5)"})
    theta: float = field(default=0.5, metadata={"help": "shift θ for similar pairs as a fraction of bits (dhash: K/2; dissimilar θ = 0); dha-t uses θ·t"})
    gamma: float = field(default=2.0, metadata={"help": "focal exponent γ of the modulating factor (1 − p)^γ (paper: 2, Eq. 6)"})
    beta: float = field(default=0.0, metadata={"help": "class-balance weight β of similar pairs, in (0, 1) (Eq. 7); 0 = (r+1)/(r+2) from each batch"})
    lam: float = field(default=0.1, metadata={"help": "weight λ of the quantisation loss Q (Eq. 1, 9; dhash: 0.1)"})


def focal_pair_loss(x: torch.Tensor, s: torch.Tensor, gamma: float) -> torch.Tensor:
    """Per-pair bracket of Eq. 8 on logits x = α(z − θ): −[s(1−σ)^γ log σ + (1−s)σ^γ log(1−σ)].

    Equal to ``torchvision.ops.sigmoid_focal_loss(x, s, alpha=-1, gamma=gamma)`` for binary s;
    written with ``σ(−x)`` and BCE-with-logits so that it stays finite for any x.
    """
    ce = F.binary_cross_entropy_with_logits(x, s, reduction="none")
    one_minus_pt = torch.sigmoid(x) * (1 - s) + torch.sigmoid(-x) * s
    return ce * one_minus_pt.pow(gamma)


def balance_weight(s: torch.Tensor, mask: torch.Tensor, pairs: Pairs | None = None) -> torch.Tensor:
    """β = (r+1)/(r+2) = |S| / (|S| + |S₁|) over the pairs in ``mask`` (r = #dissimilar / #similar, S₁ the
    similar pairs), inside [1/2, 1 − 1/|S|]; 1/2 when every pair is similar, → 1 when none is.
    Counted over the global batch with ``pairs``."""
    count = (lambda x: x.sum()) if pairs is None else pairs.count
    n = count(mask.to(s.dtype)).clamp_min(2)
    similar = count(s * mask)
    return (n / (n + similar)).clamp(0.5, 1 - 1 / n)


def quantisation_loss(h: torch.Tensor, pairs: Pairs) -> torch.Tensor:
    """Q of Eq. 9 per image, averaged over the batch: mean_i Σ_k (1/K)(1 − e^{|h_ik|−1})."""
    return pairs.row_mean(1 - torch.exp(h.abs() - 1))


class DHA(PairMethod):
    """Adaptive focal pair loss on tanh-relaxed codes with a quantisation term (binary similarity)."""

    name = "dha"
    paper = "Xu et al., DHA: Supervised Deep Learning to Hash with an Adaptive Loss Function, ICCV Workshops 2019"
    params_cls = DHAParams
    # The paper fine-tunes ImageNet AlexNet: SGD, momentum 0.9, weight decay 5e-4, batch 256, lr 1e-3 (hash
    # layer ×10), step decay 0.1. Not dhash's defaults: on the small CNN trained from scratch they learn far
    # slower than dhash's Adam (1 epoch on 3,000 Fashion-MNIST images: mAP 0.23 vs 0.46); use --config to apply them.
    train_defaults: ClassVar[dict] = {}

    def targets(self, pairs: Pairs) -> tuple[torch.Tensor, torch.Tensor]:
        """Pair targets s and shifts θ (in inner-product units): θ = θ·K for similar pairs, 0 otherwise."""
        s = pairs.similarity()
        return s, s * (self.params.theta * self.bits)

    def pair_loss(self, pairs: Pairs, state: TrainState) -> tuple[torch.Tensor, dict[str, float]]:
        p = self.params
        h, g = pairs.both(torch.tanh)
        s, theta = self.targets(pairs)
        mask = pairs.mask()
        beta = balance_weight(s, mask, pairs) if p.beta <= 0 else p.beta
        omega = beta * s + (1 - beta) * (1 - s)
        x = (p.alpha_scale / self.bits) * (h @ g.T - theta)
        pair = pairs.mean(omega * focal_pair_loss(x, s, p.gamma), mask)
        quant = quantisation_loss(h, pairs)
        return pair + p.lam * quant, {"pair": pair.item(), "quant": quant.item(), "beta": float(beta)}


class DHAT(DHA):
    """DHA-t: the shift θ follows the continuous similarity t = cos(y_i, y_j) of the label vectors."""

    name = "dha-t"

    def targets(self, pairs: Pairs) -> tuple[torch.Tensor, torch.Tensor]:
        """s = [t > 0] and θ(t) = θ·K·t (Section 3.3.2: large θ as t → 1, small as t → 0, DHA's 0 at t = 0)."""
        t = pairs.cosine()
        return (t > 0).to(t.dtype), t * (self.params.theta * self.bits)
