"""The retrieval curves of one or several runs as PNG plots (matplotlib, Agg) and CSV tables.

Input: run name -> the ``curves`` entry of :func:`dhash.evaluate.metrics.evaluate_codes` (``curves=True``).
Output files, each with every run overlaid (the comparison figure of papers):

- ``pr_hamming.png``: precision–recall over Hamming radius (one point per radius r = 0..bits);
- ``precision_radius.png``: precision within Hamming radius r against r;
- ``precision_at_k.png``: precision@k against k (log scale);
- ``radius.csv`` (run, radius, precision, recall, retrieved) and ``topk.csv`` (run, k, precision, recall).
"""
from __future__ import annotations

import csv
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..atomic import atomic_path
from ..errors import DHashError

PLOTS = {  # file -> (curve, x, y, x label, y label, title)
    "pr_hamming.png": ("radius", "recall", "precision", "recall", "precision",
                       "Precision–recall over Hamming radius"),
    "precision_radius.png": ("radius", "radius", "precision", "Hamming radius r", "precision",
                             "Precision within Hamming radius r"),
    "precision_at_k.png": ("topk", "k", "precision", "k (top-k of the Hamming ranking)", "precision@k",
                           "Precision@k"),
}  # fmt: skip
TABLES = {"radius.csv": ("radius", "precision", "recall", "retrieved"), "topk.csv": ("k", "precision", "recall")}


def _plot(path: Path, runs: Mapping[str, Any], spec: tuple[str, ...], subtitle: str) -> None:
    curve, x, y, xlabel, ylabel, title = spec
    fig = Figure(figsize=(6.4, 4.8), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for name, curves in runs.items():
        ax.plot(curves[curve][x], curves[curve][y], marker="o" if curve == "radius" else None,
                markersize=3, linewidth=1.5, label=name)  # fmt: skip
    if curve == "topk":
        ax.set_xscale("log")
    ax.set(xlabel=xlabel, ylabel=ylabel, title=f"{title}\n{subtitle}" if subtitle else title)
    ax.set_ylim(0, 1.02)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")


def _table(path: Path, runs: Mapping[str, Any], curve: str, columns: tuple[str, ...]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(("run", *columns))
        for name, curves in runs.items():
            for row in zip(*(curves[curve][c] for c in columns)):
                writer.writerow((name, *(f"{v:.6g}" if isinstance(v, float) else v for v in row)))


def write_curves(runs: Mapping[str, Mapping[str, Any]], out_dir: str | os.PathLike, subtitle: str = "") -> list[Path]:
    """Write the plots and CSV tables of ``runs`` (name -> curves) into ``out_dir``; return the paths."""
    if not runs:
        raise DHashError("write_curves: no runs to plot")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise DHashError(f"{out}: exists and is not a folder")
    written = []
    for name, spec in PLOTS.items():
        _plot(out / name, runs, spec, subtitle)
        written.append(out / name)
    for name, columns in TABLES.items():
        _table(out / name, runs, name.removesuffix(".csv"), columns)
        written.append(out / name)
    return written
