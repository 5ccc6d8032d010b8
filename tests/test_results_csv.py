"""dhash query's CSV, formatted with NumPy (dhash.search.results.result_csv), is byte for byte what the
csv module writes for the same result records: k-NN with padding, radius results with empty queries,
ids that need quoting, no results at all."""
import csv
import io

import numpy as np
import pytest

from dhash.search.results import result_csv, result_records

ODD_IDS = ['a,b', 'say "hi"', "two\nlines", "cr\rhere", "", " spaced ", "tab\there", "é ü 猫", "plain"]


def reference(dist, idx, lims, ids):
    keys = ["query", "rank", "index"] + (["id"] if ids is not None else []) + ["distance"]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n")
    writer.writeheader()
    writer.writerows(result_records(dist, idx, lims, ids))
    return buf.getvalue().encode("utf-8")


@pytest.mark.parametrize("with_ids", [False, True])
def test_knn_csv_matches_csv_module(with_ids):
    rng = np.random.default_rng(0)
    n = 1_234_567
    idx = rng.integers(0, n, (300, 12))
    dist = rng.integers(0, 1025, (300, 12)).astype(np.int32)
    idx[7, 5:] = -1  # k larger than the database: padding is left out
    idx[0, :len(ODD_IDS)] = np.arange(len(ODD_IDS))
    idx[1, 0], dist[1, 0] = 0, 0
    ids = None
    if with_ids:
        ids = [f"img{j}" for j in range(n)]
        ids[: len(ODD_IDS)] = ODD_IDS
    got = result_csv(dist, idx, None, ids, block=1000)  # several blocks
    assert got == reference(dist, idx, None, ids)


def test_range_csv_and_empty_results():
    lims = np.array([0, 3, 3, 4, 4])
    dist, idx = np.array([0, 9, 10, 100]), np.array([5, 0, 99, 1000])
    ids = [str(j) for j in range(1001)]
    assert result_csv(dist, idx, lims, ids) == reference(dist, idx, lims, ids)
    assert result_csv(dist[:0], idx[:0], np.array([0, 0]), ids) == b"query,rank,index,id,distance\n"
    assert result_csv(np.zeros((3, 2), np.int32), np.full((3, 2), -1), None) == b"query,rank,index,distance\n"
