"""Numba kernels: every per-query retrieval metric from one block of Hamming distances.

Hamming distances take only ``bits + 1`` values, so nothing is sorted. One pass over the
database counts, per distance d, the items n[d] and the relevant ones r[d] (a counting sort's
histogram); that alone gives every radius metric and, with ``ties="average"``, every tie-aware
metric in closed form (McSherry & Najork, ECIR 2008; formulas in ``docs/metrics.md``). With
``ties="stable"`` the pass also notes, for each relevant item, its place among the items at its
distance so far; after the pass, start[d] + that place + 1 is its exact stable rank.

Labels arrive packed as uint64 words (bit c of a row = label c); relevance is "at least one
shared label", the graded gain the number of shared labels or their cosine.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

_M1 = np.uint64(0x5555555555555555)
_M2 = np.uint64(0x3333333333333333)
_M4 = np.uint64(0x0F0F0F0F0F0F0F0F)
_H01 = np.uint64(0x0101010101010101)
PLACE_SHIFT = 11  # a stable place packs (position within its distance << 11) | distance (<= 1024)
PLACE_MASK = (1 << PLACE_SHIFT) - 1


@njit(nogil=True, cache=True, error_model="numpy")
def _popcount(x):
    x = x - ((x >> np.uint64(1)) & _M1)
    x = (x & _M2) + ((x >> np.uint64(2)) & _M2)
    x = (x + (x >> np.uint64(4))) & _M4
    return (x * _H01) >> np.uint64(56)


@njit(nogil=True, cache=True, error_model="numpy")
def _relevant(q, db, j):
    if q.shape[0] == 1:  # up to 64 classes: one word (this fast path doubles pass 1's speed)
        return (q[0] & db[j, 0]) != 0
    acc = np.uint64(0)
    for w in range(q.shape[0]):
        acc |= q[w] & db[j, w]
    return acc != 0


@njit(nogil=True, cache=True, error_model="numpy")
def _shared(q, db, j):
    s = 0
    for w in range(q.shape[0]):
        s += _popcount(q[w] & db[j, w])
    return s


@njit(nogil=True, cache=True, error_model="numpy")
def _lchoose(n, k):
    return math.lgamma(n + 1.0) - math.lgamma(k + 1.0) - math.lgamma(n - k + 1.0)


@njit(nogil=True, cache=True, error_model="numpy")
def _group_terms(a, m, harmonic):
    """h1 = sum_{j=1..m} 1/(a+j) and h2 = sum_{j=1..m} (j-1)/(a+j), in O(1)."""
    h1 = harmonic[a + m] - harmonic[a]
    return h1, m - (a + 1.0) * h1


@njit(nogil=True, cache=True, error_model="numpy")
def _slot_sum(rel, slots, before, h1, h2):
    """Expected sum of prec-at-rank over ``rel`` relevant items spread uniformly over ``slots`` slots."""
    s = rel / slots * (before + 1.0) * h1
    if slots > 1:
        s += rel * (rel - 1.0) / (slots * (slots - 1.0)) * h2
    return s


@njit(nogil=True, cache=True, error_model="numpy")
def _ap_average(n, r, k, total_rel, norm_min, harmonic):
    """Tie-aware expected AP@k over all orderings of tied items (1 <= k <= database size)."""
    a = 0  # items ranked before the current tie group
    before = 0  # relevant items among them
    s = 0.0  # expected sum of precision-at-rank over the relevant items retrieved so far
    for d in range(n.shape[0]):
        nd, rd = n[d], r[d]
        if nd == 0:
            continue
        m = min(nd, k - a)  # slots of this group inside the top k
        h1, h2 = _group_terms(a, m, harmonic)
        if m < nd and not norm_min:
            # The cut at k falls inside this group: x of its rd relevant items land in its m top
            # slots, x is hypergeometric, and given x the normaliser is before + x.
            lo, hi = max(0, m - (nd - rd)), min(rd, m)
            logp = _lchoose(rd, lo) + _lchoose(nd - rd, m - lo) - _lchoose(nd, m)
            total, psum = 0.0, 0.0
            for x in range(lo, hi + 1):
                p = math.exp(logp)
                psum += p
                if before + x > 0:
                    total += p * (s + _slot_sum(x, m, before, h1, h2)) / (before + x)
                if x < hi:
                    logp += math.log((rd - x) * (m - x)) - math.log((x + 1.0) * (nd - rd - m + x + 1.0))
            return total / psum
        s += _slot_sum(rd, nd, before, h1, h2)
        a += m
        before += rd
        if a == k:
            break
    norm = min(total_rel, k) if norm_min else before
    return s / norm if norm > 0 else 0.0


@njit(nogil=True, cache=True, error_model="numpy")
def _count(dist, q, dblab, nbins):
    """Items and relevant items per distance, one counter update per item: ``(n, r)``."""
    hist = np.zeros(2 * nbins, np.int64)  # hist[2d + relevant]
    for j in range(dist.shape[0]):
        hist[2 * dist[j] + _relevant(q, dblab, j)] += 1
    r = hist[1::2].copy()
    return hist[0::2] + r, r


@njit(nogil=True, cache=True, error_model="numpy")
def _count_places(dist, q, dblab, upto, places):
    """:func:`_count` that also writes the relevant items' places (see :func:`_histogram`); the
    slot is written for every item and kept only for relevant ones (no branch)."""
    n = np.zeros(upto + 1, np.int64)
    found = 0
    for j in range(dist.shape[0]):
        d = dist[j]
        if d <= upto:
            p = n[d]
            n[d] = p + 1
            places[found] = (p << PLACE_SHIFT) | d
            found += _relevant(q, dblab, j)
    r = np.zeros(upto + 1, np.int64)
    for i in range(found):
        r[places[i] & PLACE_MASK] += 1
    return n, r, found


@njit(nogil=True, cache=True, error_model="numpy")
def _count_graded(dist, q, dblab, upto, cosine, qcount, dbcount, stable, gsum, ideal, places, rel_gain):
    """:func:`_count_places` with graded gains (see :func:`_histogram`)."""
    n = np.zeros(upto + 1, np.int64)
    r = np.zeros(upto + 1, np.int64)
    found = 0
    for j in range(dist.shape[0]):
        d = dist[j]
        if d > upto:
            continue
        s = _shared(q, dblab, j)
        g = s / math.sqrt(qcount * dbcount[j]) if cosine and s else float(s)
        gsum[d] += g
        if s:
            ideal[s, dbcount[j] if cosine else 0] += 1
            r[d] += 1
        if stable and s:
            places[found] = (n[d] << PLACE_SHIFT) | d
            rel_gain[found] = g
            found += 1
        n[d] += 1
    return n, r, found


@njit(nogil=True, cache=True, error_model="numpy")
def _histogram(dist, q, dblab, nbins, upto, graded, cosine, qcount, dbcount, stable, gsum, ideal, places, rel_gain):
    """The pass over the database: items ``n[d]`` and relevant items ``r[d]`` per distance d
    (``nbins`` entries; with stable ties or gains, 0 beyond ``upto``: farther items are skipped).

    Graded: also the gain sum per distance and ``ideal[s, c]``, the items sharing s labels with the
    query (and having c labels, for the cosine gain). Stable: also, for the i-th relevant item in
    database order, ``places[i] = (p << PLACE_SHIFT) | d`` with p its position among the items at
    its distance d (0-based), and its gain ``rel_gain[i]``. Returns ``(n, r, relevant items)``.
    """
    if not graded and not stable:
        n, r = _count(dist, q, dblab, nbins)
        return n, r, 0
    if graded:
        n, r, found = _count_graded(dist, q, dblab, upto, cosine, qcount, dbcount, stable, gsum, ideal,
                                    places, rel_gain)  # fmt: skip
    else:
        n, r, found = _count_places(dist, q, dblab, upto, places)
    n_all, r_all = np.zeros(nbins, np.int64), np.zeros(nbins, np.int64)
    n_all[: upto + 1], r_all[: upto + 1] = n, r
    return n_all, r_all, found


@njit(nogil=True, cache=True, error_model="numpy")
def _spread(n, totals, k, prefix):
    """Tie-averaged sum over the top k of per-slot weights times the item's value: every slot of a
    tie group holds the group's mean value (``totals[d] / n[d]``); ``prefix[p]`` = sum of the
    weights of slots 1..p. Weights 1 give the expected relevant count, 1/log2(p+1) the DCG."""
    a, out = 0, 0.0
    for d in range(n.shape[0]):
        if a >= k:
            break
        m = min(n[d], k - a)
        if m:
            out += totals[d] / n[d] * (prefix[a + m] - prefix[a])
        a += m
    return out


@njit(nogil=True, cache=True, error_model="numpy")
def _stable_metrics(n, r, found, places, rel_gain, total_rel, norm_min,
                    map_ks, hit_ks, ndcg_ks, discount, ap, hits, dcg):  # fmt: skip
    """Cut-off metrics of the stable ranking from the relevant items' places within their distance.

    Taken in database order, the relevant items at distance d are the rstart[d] + 1, + 2, …-th
    relevant items of the ranking; one at place p there sits at rank start[d] + p + 1. ``at[i]``,
    the rank of the (i+1)-th, comes out sorted: every cut-off metric is a prefix of it.
    """
    kmax = max(map_ks.max() if map_ks.shape[0] else 0, hit_ks.max() if hit_ks.shape[0] else 0,
               ndcg_ks.max() if ndcg_ks.shape[0] else 0)  # fmt: skip
    start = np.zeros(n.shape[0], np.int64)
    rstart = np.zeros(n.shape[0], np.int64)
    a, near, cut = 0, 0, n.shape[0] - 1
    for d in range(n.shape[0]):
        start[d], rstart[d] = a, near
        a += n[d]
        near += r[d]
        if a >= kmax:  # relevant items farther than d never reach the top kmax
            cut = d
            break
    at = np.empty(near, np.int64)
    gain_at = np.empty(near if ndcg_ks.shape[0] else 0)
    for i in range(found):
        d = places[i] & PLACE_MASK
        if d <= cut:
            at[rstart[d]] = start[d] + (places[i] >> PLACE_SHIFT) + 1
            if ndcg_ks.shape[0]:
                gain_at[rstart[d]] = rel_gain[i]
            rstart[d] += 1
    for t in range(map_ks.shape[0]):
        h = np.searchsorted(at, map_ks[t], side="right")
        prec = 0.0  # sum of precision at the first h hits
        for i in range(h):
            prec += (i + 1) / at[i]
        norm = min(total_rel, map_ks[t]) if norm_min else h
        ap[t] = prec / norm if h > 0 else 0.0
    for t in range(hit_ks.shape[0]):
        hits[t] = np.searchsorted(at, hit_ks[t], side="right")
    for t in range(ndcg_ks.shape[0]):
        for i in range(np.searchsorted(at, ndcg_ks[t], side="right")):
            dcg[t] += gain_at[i] * (discount[at[i]] - discount[at[i] - 1])


@njit(nogil=True, cache=True, error_model="numpy")
def _ideal_dcg(ideal, qcount, cosine, ks, discount):
    """DCG@k of the ideal ranking (largest gains first) for each k, from the gain buckets."""
    size = np.count_nonzero(ideal)
    value, count = np.empty(size), np.empty(size, np.int64)
    i = 0
    for s in range(ideal.shape[0]):
        for c in range(ideal.shape[1]):
            if ideal[s, c]:
                value[i] = s / math.sqrt(qcount * c) if cosine else s
                count[i] = ideal[s, c]
                i += 1
    for i in range(1, size):  # insertion sort, largest value first (a few buckets)
        v, n, t = value[i], count[i], i
        while t > 0 and value[t - 1] < v:
            value[t], count[t] = value[t - 1], count[t - 1]
            t -= 1
        value[t], count[t] = v, n
    out = np.zeros(ks.shape[0])
    for t in range(ks.shape[0]):
        placed = 0
        for i in range(size):
            take = min(count[i], ks[t] - placed)
            out[t] += value[i] * (discount[placed + take] - discount[placed])
            placed += take
            if placed == ks[t]:
                break
    return out


def place_buffer(n_db: int, stable: bool) -> np.ndarray:
    """Scratch for :func:`block_metrics`: 32-bit places while they fit (measured faster than 64)."""
    return np.empty(n_db if stable else 0, np.uint32 if n_db < 2 ** (32 - PLACE_SHIFT) else np.int64)


@njit(nogil=True, cache=True, error_model="numpy")
def block_metrics(dist, qlab, dblab, qcount, dbcount, average, norm_min, cosine, full,
                  map_ks, hit_ks, ndcg_ks, harmonic, discount, places,
                  ap_out, hits_out, ndcg_out, n_out, r_out):  # fmt: skip
    """Fill the per-query outputs for one block of queries (serial; runs without the GIL, so
    callers parallelise over blocks with threads).

    dist: uint16 nb×N Hamming distances; qlab / dblab: uint64 label words; qcount / dbcount:
    int64 labels per row (used by NDCG). map_ks, hit_ks (ascending), ndcg_ks: int64
    cut-offs, each in 1..N. harmonic[i] = H_i for i <= N (average ties); discount[p] =
    sum_{i<=p} 1/log2(i+1) up to max(ndcg_ks). places: scratch of N entries for stable ties
    (:func:`place_buffer`). Outputs: ap_out nb×len(map_ks) AP@k;
    hits_out nb×len(hit_ks) (expected) relevant items in the top k; ndcg_out nb×len(ndcg_ks);
    n_out / r_out nb×(bits+1) items / relevant items at each distance. ``full=False`` (allowed
    when no metric needs the relevant items beyond the largest cut-off, e.g. mAP@k normalised by
    the retrieved relevant items) lets stable ties first count the distances alone and then look
    at labels only up to the distance where the top max(k) ends; r_out is then 0 beyond it.
    """
    nb, N = dist.shape
    nbins = n_out.shape[1]
    graded = ndcg_ks.shape[0] > 0
    stable = not average
    rel_gain = np.empty(N if stable and graded else 0)
    slots = np.arange(N + 1.0) if average else np.empty(0)  # prefix sums of weight 1 per slot
    kmax = max(map_ks.max() if map_ks.shape[0] else 0, hit_ks.max() if hit_ks.shape[0] else 0,
               ndcg_ks.max() if ndcg_ks.shape[0] else 0)  # fmt: skip
    limited = stable and not full and kmax < N  # (measured: a loss for average ties, a gain for stable)
    for qi in range(nb):
        counts = np.zeros(nbins, np.int64)
        upto = nbins - 1
        if limited:
            for j in range(N):
                counts[dist[qi, j]] += 1
            a = 0
            for d in range(nbins):
                a += counts[d]
                if a >= kmax:
                    upto = d
                    break
        gsum = np.zeros(nbins)
        max_labels = dblab.shape[1] * 64
        ideal = np.zeros((qcount[qi] + 1 if graded else 0, max_labels + 1 if cosine else 1), np.int64)
        n, r, found = _histogram(dist[qi], qlab[qi], dblab, nbins, upto, graded, cosine, qcount[qi], dbcount, stable,
                                 gsum, ideal, places, rel_gain)  # fmt: skip
        if limited:
            n = counts
        n_out[qi], r_out[qi] = n, r
        total_rel = r.sum()
        dcg = np.zeros(ndcg_ks.shape[0])
        if average:
            for t in range(map_ks.shape[0]):
                ap_out[qi, t] = _ap_average(n, r, map_ks[t], total_rel, norm_min, harmonic)
            for t in range(hit_ks.shape[0]):
                hits_out[qi, t] = _spread(n, r, hit_ks[t], slots)
            for t in range(ndcg_ks.shape[0]):
                dcg[t] = _spread(n, gsum, ndcg_ks[t], discount)
        else:
            _stable_metrics(n, r, found, places, rel_gain, total_rel, norm_min,
                            map_ks, hit_ks, ndcg_ks, discount, ap_out[qi], hits_out[qi], dcg)  # fmt: skip
        if graded:
            best = _ideal_dcg(ideal, qcount[qi], cosine, ndcg_ks, discount)
            for t in range(ndcg_ks.shape[0]):
                ndcg_out[qi, t] = dcg[t] / best[t] if best[t] > 0 else 0.0
