"""Pair bookkeeping shared by the pairwise and triplet losses: similarity from labels, masks, balance."""
from __future__ import annotations

import torch


def label_similarity(a: torch.Tensor, b: torch.Tensor | None = None) -> torch.Tensor:
    """Binary similarity s_ij = 1 when multi-hot label rows share at least one label, else 0."""
    b = a if b is None else b
    return ((a.float() @ b.float().T) > 0).float()


def label_cosine(a: torch.Tensor, b: torch.Tensor | None = None) -> torch.Tensor:
    """Continuous similarity t_ij = cosine of the label vectors (DHA-t, Section 3.3); 0 for empty rows."""
    b = a if b is None else b
    a, b = a.float(), b.float()
    na = a.norm(dim=1, keepdim=True).clamp_min(1e-12)
    nb = b.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return (a / na) @ (b / nb).T


def off_diagonal(n: int, device: torch.device | None = None) -> torch.Tensor:
    """Boolean mask of the n × n pairs (i, j) with i != j."""
    return ~torch.eye(n, dtype=torch.bool, device=device)
