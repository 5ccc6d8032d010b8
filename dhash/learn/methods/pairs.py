"""The pair-loss base: similarity from labels, pair masks, the global-batch hook and reductions.

In the style of pytorch-metric-learning, a pair or triplet method writes only its paper's formula
over a ``Pairs`` object: the rows ``i`` are the outputs of this process's batch, the columns ``j``
"the other side" of the pairs. ``PairMethod.other_side`` (the global-batch hook) chooses the columns:
by default the batch itself; under DistributedDataParallel (``dhash.learn.distributed``) the batch
of every process, gathered with gradients flowing back to each process's own rows; DPSH's memory
bank of the whole training set. Every sum the loss takes goes through ``Pairs`` (``sum``, ``mean``,
``balanced_mean``, ``row_mean``, ``count``), whose ``BatchScope`` makes it a sum over all processes,
so each process holds the loss of the global batch (see ``dhash.learn.distributed`` for why its
gradient is then the single-process gradient).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .base import Method, NetOutput, TrainState


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


class BatchScope:
    """Which items a step's pairs span: this process's batch alone (this class) or, in
    ``dhash.learn.distributed.GlobalScope``, the batches of all processes."""

    def gather(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` (rows of this process) with the rows of every process, in rank order."""
        return x

    def offset(self, rows: int) -> int:
        """Position of this process's first row in ``gather``'s result."""
        return 0

    def sum(self, x: torch.Tensor) -> torch.Tensor:
        """Sum of ``x`` over all its elements and all processes (differentiable)."""
        return x.sum()


LOCAL = BatchScope()


@dataclass
class Side:
    """One side of the pairs: raw hash-layer outputs ``h``, multi-hot ``labels`` and, when the network
    has a classifier, its ``logits``."""

    h: torch.Tensor
    labels: torch.Tensor
    logits: torch.Tensor | None = None


class Pairs:
    """The pairs (i, j) of a step: rows i = this process's items, columns j = the other side.

    ``diagonal[i]`` is the column holding row i's own item (left out of every pair mask).
    """

    def __init__(self, rows: Side, cols: Side, diagonal: torch.Tensor, scope: BatchScope = LOCAL) -> None:
        self.rows, self.cols, self.diagonal, self.scope = rows, cols, diagonal, scope

    def both(self, fn) -> tuple[torch.Tensor, torch.Tensor]:
        """``fn`` applied to the rows' and the columns' ``h`` (once when they are the same)."""
        rows = fn(self.rows.h)
        return rows, rows if self.cols is self.rows else fn(self.cols.h)

    def similarity(self) -> torch.Tensor:
        """s_ij ∈ {0, 1}: the items share a label (multi-label: at least one)."""
        return label_similarity(self.rows.labels, None if self.cols is self.rows else self.cols.labels)

    def cosine(self) -> torch.Tensor:
        """t_ij = cosine of the label vectors (graded similarity, DHA-t)."""
        return label_cosine(self.rows.labels, None if self.cols is self.rows else self.cols.labels)

    def mask(self) -> torch.Tensor:
        """Boolean B × M mask of the pairs i ≠ j."""
        mask = torch.ones(len(self.rows.h), len(self.cols.h), dtype=torch.bool, device=self.rows.h.device)
        mask[torch.arange(len(mask), device=mask.device), self.diagonal] = False
        return mask

    def sum(self, x: torch.Tensor) -> torch.Tensor:
        """Sum over all elements of ``x`` and all processes."""
        return self.scope.sum(x)

    def count(self, mask: torch.Tensor) -> torch.Tensor:
        """Number of True in a boolean ``mask`` (an exact int64), or the sum of a weight matrix, over all
        processes; no gradient."""
        with torch.no_grad():
            return self.scope.sum(mask)

    def mean(self, values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Mean of ``values`` over the pairs in the boolean ``mask`` (0 when there are none)."""
        return self.sum(values[mask]) / self.count(mask).clamp_min(1)

    def balanced_mean(self, values: torch.Tensor, sim: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Half the mean over the similar pairs (``sim`` > 0) plus half the mean over the dissimilar
        ones, of the pairs in ``mask``; all of the weight on one kind when the batch has only that kind,
        a zero that keeps the graph when it has no pairs. (HashNet's |S|/|S₁|, |S|/|S₀| weights.)"""
        means = []
        for kind in (mask & (sim > 0), mask & ~(sim > 0)):
            n = self.count(kind)
            if n > 0:
                means.append(self.sum(values[kind]) / n)
        return sum(means) / len(means) if means else self.sum(values) * 0.0

    def row_mean(self, values: torch.Tensor) -> torch.Tensor:
        """Mean of per-row ``values`` (or of all elements of a per-row matrix) over the rows of all processes."""
        return self.sum(values) / (self.count(torch.ones_like(values, dtype=torch.bool)))


class PairMethod(Method):
    """A method whose loss is a function of ``Pairs``: subclasses implement ``pair_loss``.

    ``scope`` is set by ``dhash.learn.distributed`` under DistributedDataParallel.
    """

    scope: BatchScope = LOCAL

    def loss(self, out: NetOutput, labels: torch.Tensor, state: TrainState) -> tuple[torch.Tensor, dict[str, float]]:
        return self.pair_loss(self.other_side(Side(out.h, labels, out.logits), state), state)

    def other_side(self, rows: Side, state: TrainState) -> Pairs:
        """The global-batch hook: pair ``rows`` with the batch itself, or with every process's batch."""
        if self.scope is LOCAL:
            return Pairs(rows, rows, torch.arange(len(rows.h), device=rows.h.device))
        gather = self.scope.gather
        cols = Side(gather(rows.h), gather(rows.labels), None if rows.logits is None else gather(rows.logits))
        start = self.scope.offset(len(rows.h))
        return Pairs(rows, cols, torch.arange(start, start + len(rows.h), device=rows.h.device), self.scope)

    def pair_loss(self, pairs: Pairs, state: TrainState) -> tuple[torch.Tensor, dict[str, float]]:
        """The paper's loss over ``pairs`` and its named parts."""
        raise NotImplementedError
