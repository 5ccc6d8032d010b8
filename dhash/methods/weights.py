"""Class-balance weighting for pairwise losses: how rare similar pairs are in a batch.

With ``c`` classes of equal size only about ``1/c`` of the pairs are similar, so an unweighted pair
loss is dominated by dissimilar pairs. DHA (Eq. 7) weights similar pairs by β and dissimilar pairs by
1 − β with β = r/(r+1), r = #dissimilar / #similar; HashNet (Eq. 2) weights them by |S|/|S₁| and
|S|/|S₀|. Both are functions of the fraction of dissimilar pairs, computed here.
"""
from __future__ import annotations

import torch


def dissimilar_fraction(s: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """β = |S₀| / |S| over the pairs selected by ``mask`` (s binary), kept inside [1/|S|, 1 − 1/|S|].

    β = r/(r+1) with r the ratio of dissimilar to similar pairs. The clamp keeps both weights
    finite when a batch happens to hold only one kind of pair (the missing kind gets no weight anyway).
    """
    n = mask.sum().clamp_min(2).to(s.dtype)
    n_dissimilar = ((1 - s) * mask).sum()
    return (n_dissimilar / n).clamp(1 / n, 1 - 1 / n)
