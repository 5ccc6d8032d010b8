"""The relaxed code agreement shared by the pairwise losses on tanh-relaxed codes (``dual-hinge``, ``expo``).

For codes ``b ∈ {−1, 1}^K`` the agreement ``⟨b_i, b_j⟩ / K`` is ``1 − 2·hamming/K``; relaxing each code
to ``u = tanh(h)`` makes it bilinear in the two relaxed codes and differentiable.
"""
from __future__ import annotations

import torch

from .pairs import Pairs


def tanh_agreement(pairs: Pairs, centre: bool = False) -> torch.Tensor:
    """``A_ij = ⟨tanh h_i, tanh h_j⟩ / K`` ∈ [−1, 1] for the raw outputs of the rows and columns of ``pairs``;
    with ``centre`` both relaxed codes first lose the columns' (the whole batch's) mean code, so a bit
    that is the same for every image adds nothing to any pair's agreement."""
    u, v = pairs.both(torch.tanh)
    if centre:
        mean = v.mean(0, keepdim=True)
        u, v = u - mean, v - mean
    return u @ v.T / u.shape[1]


def pair_mean(values: torch.Tensor, sim: torch.Tensor, pairs: Pairs, balance: bool = True) -> torch.Tensor:
    """Average a matrix of per-pair losses over the pairs i ≠ j; with ``balance`` the similar and the
    dissimilar pairs each carry half the weight (``Pairs.balanced_mean``), so the ~9× more numerous
    dissimilar pairs of a 10-class set do not drown the similar ones."""
    mask = pairs.mask()
    return pairs.balanced_mean(values, sim, mask) if balance else pairs.mean(values, mask)
