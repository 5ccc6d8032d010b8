"""Search results as records: one ``{query, rank, index, id, distance}`` dict per hit (``dhash query``)."""
from __future__ import annotations

import numpy as np


def result_records(dist: np.ndarray, idx: np.ndarray, lims: np.ndarray | None = None,
                   ids: list[str] | None = None) -> list[dict]:
    """Records in query, rank order of a k-NN result (``lims`` None: N × k arrays, -1 padding left out)
    or of a range result (``lims``: where each query's hits start in the flat arrays); ``id`` when ``ids``."""
    if lims is None:
        nq, k = idx.shape
        qs, ranks = np.repeat(np.arange(nq), k), np.tile(np.arange(1, k + 1), nq)
        dist, idx = dist.ravel(), idx.ravel()
    else:
        counts = np.diff(lims)
        qs = np.repeat(np.arange(len(counts)), counts)
        ranks = np.arange(len(idx)) - np.repeat(lims[:-1], counts) + 1
    keep = idx >= 0
    rows = []
    for q, r, i, d in zip(qs[keep].tolist(), ranks[keep].tolist(), idx[keep].tolist(), dist[keep].tolist()):
        row = {"query": q, "rank": r, "index": i}
        if ids is not None:
            row["id"] = ids[i]
        row["distance"] = d
        rows.append(row)
    return rows
