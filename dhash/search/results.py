"""Search results as rows ``query, rank, index, [id,] distance`` (``dhash query``): as records (one dict
per hit, for JSON and tables) or as CSV bytes formatted with NumPy, without a Python object per row."""
from __future__ import annotations

import csv
import io

import numpy as np


def _flat(dist: np.ndarray, idx: np.ndarray, lims: np.ndarray | None) -> tuple[np.ndarray, ...]:
    """Query, rank, index and distance of every hit, in query, rank order (-1 padding left out)."""
    if lims is None:
        nq, k = idx.shape
        qs, ranks = np.repeat(np.arange(nq), k), np.tile(np.arange(1, k + 1), nq)
        dist, idx = dist.ravel(), idx.ravel()
    else:
        counts = np.diff(lims)
        qs = np.repeat(np.arange(len(counts)), counts)
        ranks = np.arange(len(idx)) - np.repeat(lims[:-1], counts) + 1
    keep = idx >= 0
    return qs[keep], ranks[keep], idx[keep], dist[keep]


def result_records(dist: np.ndarray, idx: np.ndarray, lims: np.ndarray | None = None,
                   ids: list[str] | None = None) -> list[dict]:
    """Records in query, rank order of a k-NN result (``lims`` None: N × k arrays, -1 padding left out)
    or of a range result (``lims``: where each query's hits start in the flat arrays); ``id`` when ``ids``."""
    rows = []
    for q, r, i, d in zip(*(a.tolist() for a in _flat(dist, idx, lims))):
        row = {"query": q, "rank": r, "index": i}
        if ids is not None:
            row["id"] = ids[i]
        row["distance"] = d
        rows.append(row)
    return rows


def _digits(x: np.ndarray) -> np.ndarray:
    """Non-negative integers as right-aligned ASCII digits, n × width uint8; the unused leading
    positions are 0 bytes (removed when the rows are joined)."""
    x = np.asarray(x, np.int64)
    width = len(str(int(x.max()))) if len(x) else 1
    out = np.empty((len(x), width), np.uint8)
    rest = x.copy()
    for p in range(width - 1, -1, -1):
        out[:, p] = rest % 10 + ord("0")
        rest //= 10
    ndigits = np.searchsorted(10 ** np.arange(1, width, dtype=np.int64), x, side="right") + 1
    out[np.arange(width)[None, :] < (width - ndigits)[:, None]] = 0
    return out


def _csv_field(text: str) -> str:
    """One CSV field as the csv module writes it (quoted when it holds a comma, quote or line break)."""
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow([text])
    return buf.getvalue()[:-1]


def _id_bytes(ids: list[str], idx: np.ndarray) -> np.ndarray:
    """The CSV fields of ids[idx] as UTF-8, n × longest uint8, 0-padded."""
    fields = [ids[i] for i in idx.tolist()]
    encoded = np.array([f.encode("utf-8") for f in fields] or [b""], dtype=bytes)[: len(fields)]
    table = np.frombuffer(encoded.tobytes(), np.uint8).reshape(len(fields), encoded.dtype.itemsize)
    special = np.flatnonzero(np.isin(table, np.frombuffer(b',"\r\n', np.uint8)).any(1))
    if len(special):  # quoted as the csv module does; rare, so row by row
        quoted = [_csv_field(fields[j]).encode("utf-8") for j in special.tolist()]
        width = max(table.shape[1], max(map(len, quoted)))
        table = np.pad(table, ((0, 0), (0, width - table.shape[1])))
        table[special] = np.frombuffer(np.array(quoted, dtype=f"S{width}").tobytes(), np.uint8).reshape(-1, width)
    return table


def result_csv(dist: np.ndarray, idx: np.ndarray, lims: np.ndarray | None = None, ids: list[str] | None = None,
               block: int = 1 << 18) -> bytes:
    """The rows of :func:`result_records` as CSV (header, ``\\n`` line ends), byte for byte what the csv
    module writes for them; formatted ``block`` rows at a time with NumPy."""
    cols = ["query", "rank", "index"] + (["id"] if ids is not None else []) + ["distance"]
    parts = [(",".join(cols) + "\n").encode()]
    qs, ranks, ix, ds = _flat(dist, idx, lims)
    for s in range(0, len(ix), block):
        e = min(len(ix), s + block)
        fields = [_digits(qs[s:e]), _digits(ranks[s:e]), _digits(ix[s:e])]
        if ids is not None:
            fields.append(_id_bytes(ids, ix[s:e]))
        fields.append(_digits(ds[s:e]))
        sep = [np.full((e - s, 1), ord(","), np.uint8)] * (len(fields) - 1) + [np.full((e - s, 1), ord("\n"), np.uint8)]
        table = np.concatenate([a for pair in zip(fields, sep) for a in pair], axis=1)
        parts.append(table[table != 0].tobytes())
    return b"".join(parts)
