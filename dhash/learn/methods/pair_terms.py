"""Terms shared by the pairwise losses on tanh-relaxed codes: code agreement and the pair average.

Used by ``dual-hinge`` and ``expo``. For codes ``b ∈ {−1, 1}^K`` the agreement ``⟨b_i, b_j⟩ / K``
is ``1 − 2·hamming/K``; relaxing each code to ``u = tanh(h)`` makes it bilinear in the two relaxed
codes and differentiable.
"""
from __future__ import annotations

import torch

from .pairs import off_diagonal


def tanh_agreement(h: torch.Tensor) -> torch.Tensor:
    """``A_ij = ⟨tanh h_i, tanh h_j⟩ / K`` ∈ [−1, 1] for raw outputs ``h`` (B × K)."""
    u = torch.tanh(h)
    return u @ u.T / h.shape[1]


def pair_mean(values: torch.Tensor, sim: torch.Tensor, balance: bool = True) -> torch.Tensor:
    """Average a B × B matrix of per-pair losses over the pairs i ≠ j.

    With ``balance`` the similar pairs (``sim`` > 0) and the dissimilar pairs each carry half the
    weight (all of it when the batch has only one kind), so the ~9× more numerous dissimilar pairs of
    a 10-class set do not drown the similar ones. Returns a zero that keeps the graph for B < 2.
    """
    mask = off_diagonal(len(values), values.device)
    if not mask.any():
        return values.sum() * 0.0
    if not balance:
        return values[mask].mean()
    pos = mask & (sim > 0)
    neg = mask & ~(sim > 0)
    means = [values[m].mean() for m in (pos, neg) if m.any()]
    return sum(means) / len(means)
