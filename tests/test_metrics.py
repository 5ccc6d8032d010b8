"""Retrieval metrics: against a plain NumPy reference (stable ties), against brute force over all
orderings of tied items (average ties), hand-computed toy cases, edge cases and one-line errors."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from dhash import CodeFile, DHashError, pack_codes, write_code_file
from dhash.evaluate import metrics
from dhash.evaluate.metrics import evaluate_codes, mean_average_precision

# ---------------------------------------------------------------- plain reference (one query)


def ref_query(dist, shared, db_counts, q_count, ks, radius, normalizer="retrieved", cosine=False, order=None):
    """Every metric of one query by definition, for a given ranking (default: stable argsort)."""
    n = len(dist)
    rel = shared > 0
    gain = shared / np.sqrt(np.maximum(q_count * db_counts, 1)) if cosine else shared.astype(float)
    order = np.argsort(dist, kind="stable") if order is None else order
    r_sorted, g_sorted = rel[order], gain[order]
    out = {}
    for k in ks:
        kk = min(k, n)
        top = r_sorted[:kk]
        hits = np.cumsum(top)
        s = (hits[top] / (np.flatnonzero(top) + 1)).sum()
        z = hits[-1] if normalizer == "retrieved" else min(rel.sum(), kk)
        out[f"ap@{k}"] = s / z if z else 0.0
        out[f"precision@{k}"] = top.sum() / kk
        out[f"recall@{k}"] = top.sum() / rel.sum() if rel.sum() else 0.0
        disc = 1 / np.log2(np.arange(2, kk + 2))
        ideal = (np.sort(gain)[::-1][:kk] * disc).sum()
        out[f"ndcg@{k}"] = (g_sorted[:kk] * disc).sum() / ideal if ideal else 0.0
    within = dist <= radius
    out["p@h"] = rel[within].sum() / within.sum() if within.any() else 0.0
    out["r@h"] = rel[within].sum() / rel.sum() if rel.sum() else 0.0
    return out


def distances(q_codes, db_codes, bits):
    """Hamming distances by a matrix product of ±1 codes (independent of the compiled core)."""
    qs = np.unpackbits(q_codes, axis=1, count=bits, bitorder="little").astype(np.int64) * 2 - 1
    ds = np.unpackbits(db_codes, axis=1, count=bits, bitorder="little").astype(np.int64) * 2 - 1
    return (bits - qs @ ds.T) // 2


def reference(q_codes, db_codes, q_labels, db_labels, bits, ks, radius=2, normalizer="retrieved", cosine=False):
    dist = distances(q_codes, db_codes, bits)
    shared = q_labels.astype(np.int64) @ db_labels.T.astype(np.int64)
    per_query = [
        ref_query(dist[i], shared[i], db_labels.sum(1), q_labels[i].sum(), ks, radius, normalizer, cosine)
        for i in range(len(q_codes))
    ]
    return {key: np.mean([p[key] for p in per_query]) for key in per_query[0]}


def brute_force(dist, shared, db_counts, q_count, ks, radius, normalizer="retrieved", cosine=False):
    """Mean of every metric over all orderings of the tied items (all permutations, then a stable sort)."""
    runs = []
    for perm in itertools.permutations(range(len(dist))):
        perm = np.array(perm)
        order = perm[np.argsort(dist[perm], kind="stable")]
        runs.append(ref_query(dist, shared, db_counts, q_count, ks, radius, normalizer, cosine, order=order))
    return {key: np.mean([r[key] for r in runs]) for key in runs[0]}


def random_case(rng, nq, n, bits, classes, multi=False, p_label=0.3):
    q_codes = pack_codes(rng.random((nq, bits)) - 0.5)
    db_codes = pack_codes(rng.random((n, bits)) - 0.5)
    if multi:
        ql = (rng.random((nq, classes)) < p_label).astype(np.uint8)
        dl = (rng.random((n, classes)) < p_label).astype(np.uint8)
    else:
        ql = np.eye(classes, dtype=np.uint8)[rng.integers(0, classes, nq)]
        dl = np.eye(classes, dtype=np.uint8)[rng.integers(0, classes, n)]
    return q_codes, db_codes, ql, dl


def evaluate_arrays(q_codes, db_codes, ql, dl, bits, **kw):
    return evaluate_codes(CodeFile(q_codes, bits, ql), CodeFile(db_codes, bits, dl), **kw)


# ---------------------------------------------------------------- stable ties vs the reference


@pytest.mark.parametrize("multi", [False, True])
@pytest.mark.parametrize("normalizer", ["retrieved", "min"])
def test_stable_matches_numpy_reference_with_heavy_ties(multi, normalizer):
    rng = np.random.default_rng(1 + multi)
    bits, ks = 6, [1, 7, 50, 333, 400, 1000]  # 7 distance values for 400 items; k > N included
    q, db, ql, dl = random_case(rng, 40, 400, bits, classes=12 if multi else 5, multi=multi)
    ref = reference(q, db, ql, dl, bits, ks, radius=2, normalizer=normalizer)
    got = evaluate_arrays(q, db, ql, dl, bits, map_at=ks, precision_at=ks, ndcg_at=ks, normalizer=normalizer)
    for k in ks:
        assert got[f"map@{k}"] == pytest.approx(ref[f"ap@{k}"], abs=1e-12)
        assert got[f"precision@{k}"] == pytest.approx(ref[f"precision@{k}"], abs=1e-12)
        assert got[f"recall@{k}"] == pytest.approx(ref[f"recall@{k}"], abs=1e-12)
        assert got[f"ndcg@{k}"] == pytest.approx(ref[f"ndcg@{k}"], abs=1e-12)
        assert mean_average_precision(q, db, ql, dl, bits, top_k=k, normalizer=normalizer) == pytest.approx(
            ref[f"ap@{k}"], abs=1e-12
        )
    assert got["p@h<=2"] == pytest.approx(ref["p@h"], abs=1e-12)
    assert got["r@h<=2"] == pytest.approx(ref["r@h"], abs=1e-12)
    assert got["multi_label"] is multi


def test_cosine_gain_and_wide_labels():
    """More than 64 classes (several label words) and the cosine NDCG gain."""
    rng = np.random.default_rng(3)
    q, db, ql, dl = random_case(rng, 20, 300, 5, classes=150, multi=True, p_label=0.03)
    ks = [10, 100]
    ref = reference(q, db, ql, dl, 5, ks, cosine=True)
    got = evaluate_arrays(q, db, ql, dl, 5, map_at=["all", 10], precision_at=ks, ndcg_at=ks, gain="cosine")
    for k in ks:
        assert got[f"ndcg@{k}"] == pytest.approx(ref[f"ndcg@{k}"], abs=1e-12)
        assert got[f"recall@{k}"] == pytest.approx(ref[f"recall@{k}"], abs=1e-12)
    assert got["map@10"] == pytest.approx(ref["ap@10"], abs=1e-12)
    assert got["gain"] == "cosine"


def test_blocks_and_threads_do_not_change_results(monkeypatch):
    rng = np.random.default_rng(4)
    q, db, ql, dl = random_case(rng, 37, 500, 8, classes=4)
    kw = dict(map_at=[20, "all"], precision_at=[5, 100], ndcg_at=[10], curves=True)
    whole = evaluate_arrays(q, db, ql, dl, 8, threads=1, **kw)
    monkeypatch.setattr(metrics, "BLOCK_BYTES", 1)
    monkeypatch.setattr(metrics, "MIN_ROWS", 3)  # 13 blocks of 3 queries on 2 threads
    for ties in ("stable", "average"):
        assert evaluate_arrays(q, db, ql, dl, 8, threads=2, ties=ties, **kw) == evaluate_arrays(
            q, db, ql, dl, 8, threads=1, ties=ties, **kw)  # fmt: skip
    blocked = evaluate_arrays(q, db, ql, dl, 8, threads=2, **kw)  # sums in another order: equal to rounding
    for curve in ("radius", "topk"):
        for key, values in whole["curves"].pop(curve).items():
            assert np.allclose(blocked["curves"][curve][key], values, rtol=0, atol=1e-14)
    del blocked["curves"], whole["curves"]
    assert blocked.keys() == whole.keys()
    for key, value in whole.items():
        assert blocked[key] == (pytest.approx(value, rel=0, abs=1e-14) if isinstance(value, float) else value)


# ---------------------------------------------------------------- average ties vs brute force


@pytest.mark.parametrize("seed", range(8))
def test_average_ties_equal_mean_over_all_tie_orderings(seed):
    rng = np.random.default_rng(100 + seed)
    n, bits = int(rng.integers(3, 7)), int(rng.integers(1, 4))  # few distance values: big tie groups
    q, db, ql, dl = random_case(rng, 1, n, bits, classes=3, multi=seed % 2 == 1, p_label=0.5)
    dist = distances(q, db, bits)[0]
    shared = (ql.astype(int) @ dl.T.astype(int))[0]
    ks = list(range(1, n + 2))  # every cut-off, so the cut falls inside tie groups
    got = {nz: evaluate_arrays(q, db, ql, dl, bits, ties="average", normalizer=nz, map_at=ks, precision_at=ks,
                               ndcg_at=ks, precision_radius=1) for nz in ("retrieved", "min")}  # fmt: skip
    for nz in ("retrieved", "min"):
        exp = brute_force(dist, shared, dl.sum(1), ql[0].sum(), ks, 1, normalizer=nz)
        for k in ks:
            assert got[nz][f"map@{k}"] == pytest.approx(exp[f"ap@{k}"], abs=1e-12), (nz, k, dist, shared)
            assert got[nz][f"precision@{k}"] == pytest.approx(exp[f"precision@{k}"], abs=1e-12)
            assert got[nz][f"recall@{k}"] == pytest.approx(exp[f"recall@{k}"], abs=1e-12)
            assert got[nz][f"ndcg@{k}"] == pytest.approx(exp[f"ndcg@{k}"], abs=1e-12)
            assert mean_average_precision(q, db, ql, dl, bits, top_k=k, ties="average", normalizer=nz) == (
                pytest.approx(exp[f"ap@{k}"], abs=1e-12))  # fmt: skip
        assert got[nz]["p@h<=1"] == pytest.approx(exp["p@h"], abs=1e-12)


def expected_ap_by_slots(dist, rel, k, normalizer):
    """Tie-aware AP@k summed slot by slot with exact hypergeometric weights (no closed forms)."""
    k = min(k, len(dist))
    a = b = 0
    s = 0.0
    for d in np.unique(dist):
        n, r = int((dist == d).sum()), int(rel[dist == d].sum())
        m = min(n, k - a)

        def slots(x, size):  # expected sum of P(p) when x relevant items fill `size` slots uniformly
            return sum(x / size * (b + 1 + (t - 1) * ((x - 1) / (size - 1) if size > 1 else 0)) / (a + t)
                       for t in range(1, m + 1))  # fmt: skip

        if m < n and normalizer == "retrieved":
            total = 0.0
            for x in range(max(0, m - (n - r)), min(r, m) + 1):
                p = math.comb(r, x) * math.comb(n - r, m - x) / math.comb(n, m)
                total += p * (s + slots(x, m)) / (b + x) if b + x else 0.0
            return total
        s += sum(r / n * (b + 1 + (t - 1) * ((r - 1) / (n - 1) if n > 1 else 0)) / (a + t) for t in range(1, m + 1))
        a, b = a + m, b + (r if m == n else r * m / n)
        if a == k:
            break
    z = b if normalizer == "retrieved" else min(rel.sum(), k)
    return s / z if z else 0.0


@pytest.mark.parametrize("normalizer", ["retrieved", "min"])
def test_average_ties_on_large_tie_groups(normalizer):
    """Hundreds of items in a handful of tie groups; cut-offs inside groups."""
    rng = np.random.default_rng(7)
    q, db, ql, dl = random_case(rng, 6, 700, 3, classes=3)
    dist = distances(q, db, 3)
    ks = [1, 60, 333, 700]
    got = evaluate_arrays(q, db, ql, dl, 3, ties="average", normalizer=normalizer, map_at=ks)
    for k in ks:
        exp = np.mean([expected_ap_by_slots(dist[i], (dl @ ql[i]) > 0, k, normalizer) for i in range(6)])
        assert got[f"map@{k}"] == pytest.approx(exp, abs=1e-10)


# ---------------------------------------------------------------- hand-computed toy cases


def toy():
    """bits 4; query 0000; database distances 0, 1, 1, 2, 4; relevant items 0, 2, 3."""
    db = np.array([[0, 0, 0, 0], [1, 0, 0, 0], [0, 1, 0, 0], [1, 1, 0, 0], [1, 1, 1, 1]])
    labels = np.eye(2, dtype=np.uint8)
    return (
        CodeFile(pack_codes(np.zeros((1, 4))), 4, labels[[0]]),
        CodeFile(pack_codes(db), 4, labels[[0, 1, 0, 0, 1]]),
    )


def test_toy_stable_values():
    qf, dbf = toy()
    got = evaluate_codes(qf, dbf, map_at=[2, 3, "all"], precision_radius=1, precision_at=[2, 10], ndcg_at=[3])
    # stable ranking: rel, non, rel, rel, non -> precisions at the hits 1, 2/3, 3/4
    assert got["map@all"] == pytest.approx((1 + 2 / 3 + 3 / 4) / 3)
    assert got["map@2"] == pytest.approx(1.0)
    assert got["map@3"] == pytest.approx((1 + 2 / 3) / 2)
    assert got["p@h<=1"] == pytest.approx(2 / 3) and got["r@h<=1"] == pytest.approx(2 / 3)
    assert got["precision@2"] == pytest.approx(1 / 2) and got["recall@2"] == pytest.approx(1 / 3)
    assert got["precision@10"] == pytest.approx(3 / 5) and got["recall@10"] == pytest.approx(1.0)  # k > N
    assert got["ndcg@3"] == pytest.approx((1 + 1 / 2) / (1 + 1 / math.log2(3) + 1 / 2))
    assert (got["queries"], got["database"], got["bits"], got["ties"]) == (1, 5, 4, "stable")
    got = evaluate_codes(qf, dbf, map_at=[2, 3], precision_radius=0, normalizer="min")
    assert got["map@2"] == pytest.approx(1 / 2) and got["map@3"] == pytest.approx((1 + 2 / 3) / 3)
    assert got["p@h<=0"] == pytest.approx(1.0)


def test_toy_average_values():
    qf, dbf = toy()
    # the tie at distance 1 (items 1 and 2) in either order: hits at 1, 3, 4 or at 1, 2, 4
    got = evaluate_codes(qf, dbf, ties="average", map_at=[2, "all"], precision_at=[2], ndcg_at=[3])
    assert got["map@all"] == pytest.approx(((1 + 2 / 3 + 3 / 4) / 3 + (1 + 1 + 3 / 4) / 3) / 2)
    assert got["map@2"] == pytest.approx(1.0)
    assert got["precision@2"] == pytest.approx(0.75)
    ideal = 1 + 1 / math.log2(3) + 1 / 2
    assert got["ndcg@3"] == pytest.approx((1 + 0.5 * (1 / math.log2(3) + 1 / 2)) / ideal)
    assert evaluate_codes(qf, dbf, ties="average", map_at=2, normalizer="min")["map@2"] == pytest.approx(0.75)


def test_toy_multi_label_relevance_and_gains():
    """Query labels {0, 1}; items {1}, {2}, {0, 1}, {} at distances 0, 1, 2, 3."""
    codes = pack_codes(np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [1, 1, 1]]))
    labels = np.array([[0, 1, 0], [0, 0, 1], [1, 1, 0], [0, 0, 0]], np.uint8)
    qf = CodeFile(pack_codes(np.zeros((1, 3))), 3, np.array([[1, 1, 0]], np.uint8))
    dbf = CodeFile(codes, 3, labels)
    got = evaluate_codes(qf, dbf, precision_at=[4], ndcg_at=[2, 4])
    assert got["map@all"] == pytest.approx((1 + 2 / 3) / 2)  # sharing one of two labels is relevant
    assert got["multi_label"] and got["gain"] == "shared"
    ideal2 = 2 + 1 / math.log2(3)
    assert got["ndcg@2"] == pytest.approx(1 / ideal2)  # gains 1, 0 against the ideal 2, 1
    cos = evaluate_codes(qf, dbf, ndcg_at=[4], gain="cosine")
    g1, g3 = 1 / math.sqrt(2), 1.0
    assert cos["ndcg@4"] == pytest.approx((g1 + g3 / 2) / (g3 + g1 / math.log2(3)))
    assert "ndcg@100" in evaluate_codes(qf, dbf) and "ndcg@100" not in evaluate_codes(*toy())


def test_queries_without_relevant_items_count_as_zero():
    qf, dbf = toy()
    two = CodeFile(np.vstack([qf.codes, qf.codes]), 4, np.array([[1, 0], [0, 0]], np.uint8))  # 2nd: no labels
    one = evaluate_codes(qf, dbf, map_at=[2, "all"], precision_at=[2])
    both = evaluate_codes(two, dbf, map_at=[2, "all"], precision_at=[2])
    for key in ("map@2", "map@all", "precision@2", "recall@2", "p@h<=2", "r@h<=2"):
        assert both[key] == pytest.approx(one[key] / 2), key
    assert both["queries_without_relevant"] == 1 and one["queries_without_relevant"] == 0


def test_nothing_within_radius_counts_as_zero():
    qf, dbf = toy()
    # query 0111: distances 3, 4, 2, 3, 1 -> nothing within 0, item 4 (not relevant) within 1
    far = CodeFile(pack_codes(np.array([[0, 1, 1, 1]])), 4, qf.labels)
    assert evaluate_codes(far, dbf, precision_radius=0)["p@h<=0"] == 0.0
    assert evaluate_codes(far, dbf, precision_radius=2)["p@h<=2"] == pytest.approx(1 / 2)
    assert evaluate_codes(far, dbf, precision_radius=9)["p@h<=9"] == pytest.approx(3 / 5)  # r > bits: all
    both = CodeFile(np.vstack([qf.codes, far.codes]), 4, np.vstack([qf.labels, far.labels]))
    got = evaluate_codes(both, dbf, precision_radius=0, curves=True)
    assert got["p@h<=0"] == pytest.approx((1 + 0) / 2)  # the empty retrieval stays in the mean
    assert got["curves"]["radius"]["retrieved"][0] == pytest.approx(1 / 2)


def test_class_index_labels_and_curves():
    rng = np.random.default_rng(5)
    q, db, ql, dl = random_case(rng, 10, 80, 8, classes=3)
    hot = mean_average_precision(q, db, ql, dl, 8, top_k=20)
    assert mean_average_precision(q, db, ql.argmax(1), dl.argmax(1), 8, top_k=20) == hot
    res = evaluate_arrays(q, db, ql, dl, 8, curves=True)
    radius, topk = res["curves"]["radius"], res["curves"]["topk"]
    assert radius["radius"] == list(range(9)) and radius["recall"][-1] == pytest.approx(1.0)
    assert radius["retrieved"][-1] == pytest.approx(80) and topk["k"][0] == 1 and topk["k"][-1] == 80
    assert topk["recall"][-1] == pytest.approx(1.0)
    assert radius["precision"][-1] == pytest.approx(topk["precision"][-1])  # everything retrieved


# ---------------------------------------------------------------- errors


def test_bad_inputs_give_one_line_errors(tmp_path):
    rng = np.random.default_rng(6)
    q, db, ql, dl = random_case(rng, 3, 10, 16, classes=4)
    paths = {}
    for name, cf in {
        "q": CodeFile(q, 16, ql),
        "db": CodeFile(db, 16, dl),
        "unlabelled": CodeFile(db, 16),
        "db8": CodeFile(db[:, :1], 8, dl),
        "db5classes": CodeFile(db, 16, np.hstack([dl, dl[:, :1]])),
    }.items():
        paths[name] = write_code_file(tmp_path / f"{name}.h5", cf)
    cases = [
        (("q", "unlabelled"), "unlabelled.h5: no labels"),
        (("q", "db8"), "8-bit"),
        (("q", "db5classes"), "5"),
        (("q", "missing"), "missing.h5: no such file"),
    ]
    for (a, b), needle in cases:
        with pytest.raises(DHashError) as err:
            evaluate_codes(paths.get(a, tmp_path / f"{a}.h5"), paths.get(b, tmp_path / f"{b}.h5"))
        message = str(err.value)
        assert needle in message and "\n" not in message, message
        assert str(tmp_path) in message  # names the file
    for kwargs in ({"ties": "random"}, {"normalizer": "max"}, {"map_at": 0}, {"precision_at": ["x"]},
                   {"precision_radius": -1}, {"gain": "log"}):  # fmt: skip
        with pytest.raises(DHashError):
            evaluate_codes(paths["q"], paths["db"], **kwargs)
    with pytest.raises(DHashError, match="query labels|rows"):
        mean_average_precision(q, db, ql[:2], dl, 16)
    with pytest.raises(DHashError, match="classes"):
        mean_average_precision(q, db, ql, dl[:, :3], 16)
    with pytest.raises(DHashError, match="bytes per row"):
        mean_average_precision(q, db, ql, dl, 8)
