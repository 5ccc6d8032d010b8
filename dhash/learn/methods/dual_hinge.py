"""Dual hinge loss — Yan et al., "Deep Hashing by Discriminating Hard Examples", ACM MM 2019.

Only the abstract is available. From it (the paper's): a loss built from Gamma distributions and a
symmetric Kullback–Leibler divergence that acts as two smoothed hinge losses, one on similar and one
on dissimilar pairs; an exponentially growing penalty on hard pairs (similar pairs far apart,
dissimilar pairs close) and a bounded penalty on easy pairs, so that easy pairs cannot dominate.
Everything below the abstract is dhash's design, derived from those properties; the chosen values
are the ``Params``.

Derivation (dhash's). Let ``u = tanh(h)`` and ``d_ij = (1 − ⟨u_i, u_j⟩/K) / 2 ∈ [0, 1]``, the
relaxed fraction of differing bits (the abstract speaks of appearance distance; in code space a hard
similar pair is one the network still maps far apart). Each pair's distance is modelled by a Gamma
distribution ``P_ij = Γ(k, θ_ij)`` (shape k, scale θ) and compared with the target distribution of
its kind, ``Q = Γ(k, θ₀)``: the "near" distance distribution for a similar pair, the "far" one for a
dissimilar pair. A pair within its margin matches its target; past the margin its scale is inflated
exponentially in the violation:

    θ_ij = θ₀ (1 + e^{z_ij}),   z_ij = a (d_ij − m_s)  for similar pairs,
                                 z_ij = a (m_d − d_ij)  for dissimilar pairs.

For equal shapes, KL(Γ(k, θ₁) ‖ Γ(k, θ₂)) = k (r − 1 − ln r) with r = θ₁/θ₂, so the symmetric KL is
``k (r + 1/r − 2) = k (r − 1)² / r``; with ``r = 1 + e^z`` (θ₀ cancels) the per-pair loss is

    ℓ(z) = k e^{2z} / (1 + e^z) = k e^z σ(z).

Hard side (z > 0): ℓ ≈ k e^z, growing exponentially with slope ``a`` in the distance. Easy side
(z < 0): 0 < ℓ < k/2 and ℓ → 0 like k e^{2z}, a smoothed hinge. The batch loss averages ℓ over
pairs i ≠ j, similar and dissimilar pairs weighted equally (``balance``); similarity = at least one
shared label. The default margins and slope did best of the few settings tried on 12-bit
Fashion-MNIST (m_d ∈ {0.5, 0.6, 0.75}, a ∈ {4, 8}); differences were within run-to-run noise.

Centred start (``centre_steps``, dhash's): for the first optimisation steps, d_ij is computed from
``u − ū``, the relaxed codes minus the batch's mean code (gradient flowing through ū). At the start every
pair sits at d ≈ 0.5, so similar pairs are far past m_s and outweigh the dissimilar side ~30×; with raw
codes the cheapest pull is a bit that is the same for every image, which saturates tanh and stays dead (4
of 12 bits on MNIST with 300 training images per class). Centred, such a bit changes no distance and earns
nothing. The bits take their roles in the first few steps, so 20 centred steps (one epoch there, 2 % of
the per-class Fashion-MNIST run) suffice; measured in docs/experiments.md ("The dual hinge on a small
training set"): test mAP@all 0.44 → 0.87 ± 0.02 on that MNIST set, unchanged on Fashion-MNIST, while
centring for a quarter of the epochs or throughout costs 0.02–0.06 there. It costs on the multi-label
mosaics, where 80 % of pairs are similar (NDCG@100 0.487 against 0.525): use ``centre_steps=0`` there.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch.nn import functional as F

from ...errors import DHashError
from .base import Params, TrainState
from .pair_terms import pair_mean, tanh_agreement
from .pairs import PairMethod, Pairs


def dual_hinge(z: torch.Tensor, shape: float = 1.0) -> torch.Tensor:
    """Per-pair loss ``ℓ(z) = k·e^z·σ(z)`` (symmetric KL of Γ(k, θ₀(1+e^z)) and Γ(k, θ₀)), computed stably."""
    return shape * torch.exp(z + F.logsigmoid(z))


@dataclass
class DualHingeParams(Params):
    margin_similar: float = field(
        default=0.1, metadata={"help": "m_s: similar pairs farther apart than this fraction of bits are hard (dhash's choice)"}
    )
    margin_dissimilar: float = field(
        default=0.5, metadata={"help": "m_d: dissimilar pairs closer than this fraction of bits are hard (dhash's choice)"}
    )
    slope: float = field(
        default=8.0, metadata={"help": "a: exponential growth rate of the penalty per unit of bit fraction (dhash's choice)"}
    )
    shape: float = field(default=1.0, metadata={"help": "k: shape of the Gamma distributions; scales the loss"})
    balance: bool = field(
        default=True, metadata={"help": "weight similar and dissimilar pairs equally (dhash's choice)"}
    )
    centre_steps: int = field(
        default=20, metadata={"help": "optimisation steps, from the first, whose distances use batch-centred relaxed "
                                      "codes (dhash's choice; 0: never; see the docstring)"}
    )


class DualHinge(PairMethod):
    """Gamma / symmetric-KL dual hinge loss on tanh-relaxed pairwise code distances."""

    name = "dual-hinge"
    paper = "Yan et al., Deep Hashing by Discriminating Hard Examples, ACM Multimedia 2019"
    params_cls = DualHingeParams
    train_defaults = {}  # the abstract gives no optimiser settings: the trainer's defaults

    def __init__(self, bits: int, num_classes: int, params: DualHingeParams | None = None) -> None:
        super().__init__(bits, num_classes, params)
        if self.params.centre_steps < 0:
            raise DHashError(f"--param centre_steps={self.params.centre_steps}: give a number of steps, 0 or more")

    def pair_loss(self, pairs: Pairs, state: TrainState) -> tuple[torch.Tensor, dict[str, float]]:
        p = self.params
        sim = pairs.similarity()
        dist = (1 - tanh_agreement(pairs, centre=state.step < p.centre_steps)) / 2
        z = torch.where(sim > 0, p.slope * (dist - p.margin_similar), p.slope * (p.margin_dissimilar - dist))
        loss = pair_mean(dual_hinge(z, p.shape), sim, pairs, p.balance)
        return loss, {"dual_hinge": loss.item()}
