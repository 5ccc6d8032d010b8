"""Greedy random search for the rotation R that maximises the training mAP of ``sgn(h R)`` (SDSH).

The procedure of the SDSH authors' code (see ``../shared/papers/NOTES.md``): R starts at the
identity; step i (of n) proposes ``R' = R G_i`` with ``G_i`` a rotation by ``±(n − i)/n`` radians in
a random 2-plane, and keeps R' only when the exact mAP strictly improves. The authors build G_i as
``Uᵀ G U`` (U random orthogonal, G a Givens rotation in coordinates 0, 1); only the first two rows of
U matter, so dhash rotates in the plane of two random orthonormal vectors ``p, q`` directly:
``G_i = I + [p q] (G₂ − I) [p q]ᵀ`` — the same distribution of planes, without drawing a K × K
random orthogonal matrix at every step.
"""
from __future__ import annotations

from contextlib import nullcontext

import numpy as np
from rich.progress import Progress

from ...search.codes import pack_codes


def plane_rotation(p: np.ndarray, q: np.ndarray, angle: float) -> np.ndarray:
    """The K × K rotation by ``angle`` in the plane of orthonormal ``p``, ``q`` (identity elsewhere)."""
    basis = np.stack([p, q], axis=1)
    c, s = np.cos(angle), np.sin(angle)
    g2 = np.array([[c - 1.0, -s], [s, c - 1.0]])
    return np.eye(len(p)) + basis @ g2 @ basis.T


def random_plane(rng: np.random.Generator, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """Two orthonormal vectors spanning a uniformly random 2-plane of R^dim."""
    q_mat, r_mat = np.linalg.qr(rng.standard_normal((dim, 2)))
    q_mat = q_mat * np.sign(np.diag(r_mat))
    return q_mat[:, 0], q_mat[:, 1]


def search_rotation(
    h: np.ndarray,
    labels: np.ndarray,
    steps: int = 800,
    queries: int = 2000,
    database: int = 16000,
    seed: int = 0,
    progress: bool = False,
    threads: int | None = None,
) -> tuple[np.ndarray, dict[str, float]]:
    """Search R on ``h`` (N × K training outputs) and ``labels`` (N × C multi-hot).

    Disjoint random subsets of ``queries`` and up to ``database`` items are drawn, as in the authors'
    code: the queries first, the database from the rest (dhash's choice where N < 2·queries: half each). Returns ``(R, report)`` with the subset mAP before and after and the
    number of accepted steps. Deterministic for a given ``seed``. ``threads``: for the mAP (default all).
    """
    from ...evaluate.metrics import mean_average_precision  # numba: imported only when searching

    rng = np.random.default_rng(seed)
    n, bits = h.shape
    queries = max(1, min(queries, n // 2))
    database = min(database, n - queries)
    order = rng.permutation(n)
    q_idx, db_idx = order[:queries], order[queries : queries + database]
    hq, hdb = np.asarray(h[q_idx], np.float64), np.asarray(h[db_idx], np.float64)
    lq, ldb = np.asarray(labels[q_idx], np.uint8), np.asarray(labels[db_idx], np.uint8)

    def score(rot: np.ndarray) -> float:
        return mean_average_precision(
            pack_codes(hq @ rot), pack_codes(hdb @ rot), lq, ldb, bits, top_k=None, ties="stable", threads=threads
        )

    rot = np.eye(bits)
    best = before = score(rot)
    accepted = 0
    with Progress(*Progress.get_default_columns(), "mAP {task.fields[best]:.4f}") if progress else nullcontext() as bar:
        task = bar.add_task("rotation search", total=steps, best=best) if progress else None
        for i in range(steps):
            p, q = random_plane(rng, bits)
            angle = rng.choice((-1.0, 1.0)) * (steps - i) / steps
            candidate = rot @ plane_rotation(p, q, angle)
            value = score(candidate)
            if value > best:
                rot, best, accepted = candidate, value, accepted + 1
            if progress:
                bar.update(task, advance=1, best=best)
    return rot, {"map_before_rotation": before, "map_after_rotation": best, "rotation_accepted": accepted,
                 "rotation_steps": steps, "rotation_queries": queries, "rotation_database": database}
