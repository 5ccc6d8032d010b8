"""Exact Hamming search on a torch device: the GPU path of ``dhash query`` and ``dhash evaluate --device cuda``.

Packed codes (``codes.py``) become 64-bit words (8 bytes each, little-endian, zero padding); a
distance is the popcount of the XOR of two codes' words, summed. torch has no popcount operation,
so it is the SWAR bit count (Warren, *Hacker's Delight*, 2nd ed., Fig. 5-2): 2-bit, 4-bit and
8-bit partial sums, then the bytes added by shifts. torch shifts int64 arithmetically; every mask
clears the bits where that differs from a logical shift, so the count is exact for any word.

Results are the compiled core's (``index.py``), bit for bit: neighbours ordered by distance, ties
by database index, ``k`` beyond the database padded with index -1 and distance ``bits + 1``; radius
results in the faiss layout. Distances of one query block against one database chunk are held at
a time (``budget`` words), so memory stays bounded for any database size.

torch is imported when a search runs, never when ``dhash.search`` is imported.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from .codes import check_bits, check_codes
from ..errors import DHashError

if TYPE_CHECKING:
    import torch

M1, M2, M4 = 0x5555555555555555, 0x3333333333333333, 0x0F0F0F0F0F0F0F0F
INDEX_BITS = 32  # ranking key: distance << 32 | database index
# words of distances computed at once: large enough to keep the device busy, small enough for its memory
BUDGET = {"cuda": 1 << 26, "cpu": 1 << 22}


def torch_device(name: str) -> "torch.device":
    """The torch device ``name`` (cpu, cuda, cuda:N); a CUDA device that is not there is a DHashError."""
    import torch

    try:
        device = torch.device(name)
    except RuntimeError:
        raise DHashError(f"--device {name}: not a device (use cpu, cuda or cuda:N)") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DHashError(f"--device {name}: no CUDA device is available (use --device cpu)")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise DHashError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    elif device.type != "cpu":
        raise DHashError(f"--device {name}: Hamming search runs on cpu or cuda only")
    return device


def to_words(codes: np.ndarray, device: "torch.device") -> "torch.Tensor":
    """Packed uint8 codes (N × bytes) as an int64 tensor N × ceil(bytes / 8) on ``device``."""
    import torch

    width = -(-codes.shape[1] // 8)
    padded = np.zeros((len(codes), width * 8), dtype=np.uint8)
    padded[:, : codes.shape[1]] = codes
    return torch.from_numpy(padded.view("<i8")).to(device)


def popcount_distances(queries: "torch.Tensor", database: "torch.Tensor") -> "torch.Tensor":
    """Hamming distances (int64, nq × N) between word tensors nq × W and N × W."""
    import torch

    x = torch.bitwise_xor(queries[:, None, :], database[None, :, :])
    t = x >> 1
    t &= M1
    x -= t  # 2-bit counts
    t = x >> 2
    t &= M2
    x &= M2
    x += t  # 4-bit counts; from here on the top bit is 0, so shifts are logical
    x += x >> 4
    x &= M4  # byte counts
    x += x >> 8
    x += x >> 16
    x += x >> 32
    x &= 0x7F
    return x.sum(dim=2) if x.shape[2] > 1 else x[:, :, 0]


class TorchIndex:
    """Exact linear-scan search of packed codes on a torch device (``"cuda"``, ``"cuda:1"``, ``"cpu"``)."""

    def __init__(self, codes: np.ndarray, bits: int, device: str = "cuda", budget: int | None = None) -> None:
        self.bits = check_bits(bits)
        codes = check_codes(codes, self.bits, "database")
        if len(codes) >= 2**INDEX_BITS:
            raise DHashError(f"database: the torch search holds at most {2**INDEX_BITS - 1} codes")
        self.device = torch_device(device)
        self.budget = budget or BUDGET[self.device.type]
        self.words = to_words(codes, self.device)

    @property
    def ntotal(self) -> int:
        return int(self.words.shape[0])

    def _queries(self, queries: Any) -> "torch.Tensor":
        if isinstance(queries, np.ndarray) and queries.ndim == 1:
            queries = queries[None, :]
        return to_words(check_codes(queries, self.bits, "queries"), self.device)

    def _blocks(self, q: "torch.Tensor"):
        """Yield ``(query start, query stop, database start, distances)`` over blocks that fit the budget."""
        width = q.shape[1]
        rows = max(1, min(len(q), self.budget // max(self.ntotal * width, 1)))
        chunk = max(1, min(self.ntotal, self.budget // (rows * width)))
        for start in range(0, len(q), rows):
            block = q[start:start + rows]
            for first in range(0, self.ntotal, chunk):
                yield start, start + len(block), first, popcount_distances(block, self.words[first:first + chunk])

    def distances(self, queries: np.ndarray) -> np.ndarray:
        """All distances, ``uint16`` nq × N (as :func:`dhash.search.hamming_distances`)."""
        import torch

        q = self._queries(queries)
        out = np.empty((len(q), self.ntotal), dtype=np.uint16)
        for start, stop, first, dist in self._blocks(q):
            out[start:stop, first:first + dist.shape[1]] = dist.to(torch.int16).cpu().numpy().view(np.uint16)
        return out

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Exact k nearest neighbours: ``(distances int32 nq×k, indices int64 nq×k)``."""
        import torch

        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise DHashError(f"k: expected an integer >= 1, got {k!r}")
        q = self._queries(queries)
        kk = min(int(k), self.ntotal)
        dist = np.full((len(q), k), self.bits + 1, dtype=np.int32)
        idx = np.full((len(q), k), -1, dtype=np.int64)
        if kk == 0:
            return dist, idx
        best: dict[int, torch.Tensor] = {}
        for start, stop, first, d in self._blocks(q):
            key = (d << INDEX_BITS) | torch.arange(first, first + d.shape[1], device=self.device)
            if start in best:
                key = torch.cat([best[start], key], dim=1)
            best[start] = torch.topk(key, min(kk, key.shape[1]), dim=1, largest=False, sorted=True).values
            if first + d.shape[1] == self.ntotal:  # the last chunk: this query block is done
                keys = best.pop(start).cpu().numpy()
                dist[start:stop, :kk] = keys >> INDEX_BITS
                idx[start:stop, :kk] = keys & (2**INDEX_BITS - 1)
        return dist, idx

    def range_search(self, queries: np.ndarray, radius: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """All codes within ``radius``: ``(lims int64 nq+1, distances int32, indices int64)``."""
        if isinstance(radius, bool) or not isinstance(radius, (int, np.integer)) or radius < 0:
            raise DHashError(f"radius: expected an integer >= 0, got {radius!r}")
        q = self._queries(queries)
        rows, dists, idxs = [], [], []
        for start, _, first, d in self._blocks(q):
            r, c = (d <= int(radius)).nonzero(as_tuple=True)
            rows.append((r + start).cpu().numpy())
            dists.append(d[r, c].cpu().numpy())
            idxs.append((c + first).cpu().numpy())
        row, dist, idx = (np.concatenate(parts) if parts else np.zeros(0, np.int64) for parts in (rows, dists, idxs))
        order = np.lexsort((idx, dist, row))
        lims = np.zeros(len(q) + 1, dtype=np.int64)
        np.cumsum(np.bincount(row, minlength=len(q)), out=lims[1:])
        return lims, dist[order].astype(np.int32), idx[order].astype(np.int64)


__all__ = ["TorchIndex", "popcount_distances", "to_words", "torch_device"]
