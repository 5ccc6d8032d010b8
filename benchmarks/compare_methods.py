"""Train and evaluate every method at several code lengths: the comparison table of the seed papers.

Each cell runs ``dhash train`` then ``dhash evaluate --model … --format json`` (the commands a user runs) and
appends a row to ``OUT/results.csv``; finished cells are skipped, so an interrupted run resumes.
Writes ``results.md`` (mAP@all, mAP@1000, P@H<=2 and training time per method and length; with
``--seeds N`` each cell is trained with seeds 0 … N−1 and reported as mean ± sample standard deviation)
and ``map_vs_bits_PROTOCOL.png`` (mAP@all against code length, one line per method).

    python benchmarks/compare_methods.py                       # full protocol, 12/24/32/48 bits
    python benchmarks/compare_methods.py --protocol per-class --bits 32 --seeds 3
    python benchmarks/compare_methods.py --data fashion-mnist-mosaic --bits 32   # multi-label; see NDCG@100
"""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import click
import numpy as np
from rich.console import Console
from rich.table import Table

from dhash.learn.methods import get_method

ALL_METHODS = ["dha", "dha-t", "hegh", "dual-hinge", "expo", "sdsh", "dpsh", "hashnet", "dsh", "classifier", "itq", "pca-rr", "lsh"]
# dha-t needs graded similarity: on single-label Fashion-MNIST cos(labels) is 0 or 1 and it trains exactly
# as dha does (same seed, same numbers), so it runs only when asked for with --methods.
DEFAULT_METHODS = [m for m in ALL_METHODS if m != "dha-t"]
FIELDS = ["data", "protocol", "method", "bits", "seed", "map@all", "map@1000", "p@h<=2", "ndcg@100", "train_seconds", "epochs"]
SCORES = ["map@all", "map@1000", "p@h<=2", "ndcg@100"]
console = Console()


def _dhash(*args: str) -> str:
    exe = Path(sys.executable).with_name("dhash")
    proc = subprocess.run([str(exe), *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise click.ClickException(f"dhash {' '.join(args)} failed:\n{proc.stderr[-2000:]}")
    return proc.stdout


def _load(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with path.open() as f:
        # files from before --seeds / --data / NDCG: seed 0 on Fashion-MNIST, no NDCG
        return [{"data": "fashion-mnist", "seed": "0", "ndcg@100": "", **row} for row in csv.DictReader(f)]


def _save(path: Path, rows: list[dict]) -> None:
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)


def _logged_seconds(metrics: Path) -> float:
    """Training seconds of the epochs an interrupted run logged before its checkpoint."""
    records = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()] if metrics.exists() else []
    return sum(r["seconds"] for r in records if "epoch" in r)


def run_cell(out: Path, data: str, protocol: str, method: str, bits: int, seed: int, extra: tuple[str, ...]) -> dict:
    """Train one model and evaluate it; return its result row."""
    prefix = "" if data == "fashion-mnist" else f"{data}-"
    run = out / "runs" / (f"{prefix}{protocol}-{method}-{bits}" + (f"-seed{seed}" if seed else ""))
    timing = run / "train_wall_seconds.txt"  # written after training: a trained cell is not retrained
    if not timing.exists():
        start = time.perf_counter()
        if (run / "checkpoint.pt").exists():  # interrupted mid-training: continue it, count its earlier epochs
            start -= _logged_seconds(run / "metrics.jsonl")
            _dhash("train", "-o", str(run), "--resume")
        else:
            _dhash("train", "--data", data, "--method", method, "--bits", str(bits),
                   "--protocol", protocol, "--seed", str(seed), "-o", str(run), *extra)
        timing.write_text(f"{time.perf_counter() - start:.1f}\n")
    seconds = float(timing.read_text())
    metrics = json.loads(_dhash("evaluate", "--model", str(run / "model.pt"), "--map-at", "all,1000", "--ndcg-at", "100", "--format", "json"))
    config = json.loads((run / "config.json").read_text())
    return {
        "data": data, "protocol": protocol, "method": method, "bits": bits, "seed": seed,
        "map@all": f"{metrics['map@all']:.4f}", "map@1000": f"{metrics['map@1000']:.4f}",
        "p@h<=2": f"{metrics['p@h<=2']:.4f}", "ndcg@100": f"{metrics['ndcg@100']:.4f}", "train_seconds": f"{seconds:.0f}",
        "epochs": config["epochs"] if get_method(method).trainable else 0,  # closed form: no epochs
    }


def _stat(texts: list[str], digits: int) -> str:
    """Mean, and ± the sample standard deviation when there are several values ("—" when not measured)."""
    values = [float(v) for v in texts if v]
    if not values:
        return "—"
    mean = f"{np.mean(values):.{digits}f}"
    return mean if len(values) < 2 else f"{mean} ± {np.std(values, ddof=1):.{digits}f}"


def summarise(rows: list[dict]) -> list[dict]:
    """One row per (data, protocol, method, bits): every score as mean ± std over its seeds."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["data"], r["protocol"], r["method"], int(r["bits"])), []).append(r)
    return [{"data": d, "protocol": p, "method": m, "bits": b, "seeds": len(g), "epochs": g[0]["epochs"],
             **{s: _stat([r[s] for r in g], 3) for s in SCORES},
             "train_seconds": _stat([r["train_seconds"] for r in g], 0)}
            for (d, p, m, b), g in groups.items()]


def _cell(row: dict) -> str:
    epochs = f" ({row['epochs']} ep)" if str(row["epochs"]) != "0" else ""
    return " / ".join(row[s] for s in SCORES) + f" / {row['train_seconds']} s{epochs}"


def write_reports(out: Path, rows: list[dict]) -> None:
    """Markdown table (one line per method, columns per length) and the mAP-vs-bits plot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lines = []
    summary = summarise(rows)
    for data, protocol in sorted({(r["data"], r["protocol"]) for r in summary}):
        cells = [r for r in summary if (r["data"], r["protocol"]) == (data, protocol)]
        seeds = sorted({r["seeds"] for r in cells})
        lengths = sorted({int(r["bits"]) for r in cells})
        lines += [f"### {data}, protocol `{protocol}`", "",
                  "mAP@all / mAP@1000 / P@H≤2 / NDCG@100 / training time (epochs)"
                  + (f", mean ± std over {'/'.join(map(str, seeds))} seeds" if seeds != [1] else ""), "",
                  "| method | " + " | ".join(f"{b} bits" for b in lengths) + " |",
                  "|---|" + "---|" * len(lengths)]
        methods = [m for m in ALL_METHODS if any(r["method"] == m for r in cells)]
        for m in methods:
            by_bits = {int(r["bits"]): r for r in cells if r["method"] == m}
            lines.append(f"| {m} | " + " | ".join(_cell(by_bits[b]) if b in by_bits else "—" for b in lengths) + " |")
        lines.append("")
        if len(lengths) > 1:
            fig, ax = plt.subplots(figsize=(8, 4.5))
            colours = plt.get_cmap("tab10").colors
            for i, m in enumerate(methods):
                mine = [r for r in cells if r["method"] == m]
                pts = sorted((int(r["bits"]), float(r["map@all"].split(" ± ")[0])) for r in mine)
                # the training-free methods (no epochs) come last and reuse the first colours, dashed
                dashed = str(mine[0]["epochs"]) == "0"
                ax.plot(*zip(*pts), marker="o", label=m, color=colours[i % 10], linestyle="--" if dashed else "-")
            ax.set(xlabel="bits", ylabel="mAP@all", title=f"{data} ({protocol} protocol)", xticks=lengths)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))  # outside: no point hidden
            fig.tight_layout()
            fig.savefig(out / f"map_vs_bits_{'' if data == 'fashion-mnist' else data + '_'}{protocol}.png", dpi=120)
            plt.close(fig)
    (out / "results.md").write_text("\n".join(lines))


@click.command()
@click.option("--methods", default=",".join(DEFAULT_METHODS), show_default=True, help="Comma-separated methods.")
@click.option("--bits", "bits_list", default="12,24,32,48", show_default=True, help="Comma-separated code lengths.")
@click.option("--data", type=click.Choice(["fashion-mnist", "fashion-mnist-mosaic"]), default="fashion-mnist",
              show_default=True, help="fashion-mnist-mosaic: the multi-label benchmark (2×2 mosaics, label unions).")
@click.option("--protocol", type=click.Choice(["full", "per-class", "unseen"]), default="full", show_default=True)
@click.option("--seeds", type=click.IntRange(1, 100), default=1, show_default=True,
              help="Train each cell with seeds 0 … N−1; reports show mean ± std.")
@click.option("--out", type=click.Path(path_type=Path), default=Path("benchmarks/results/compare"), show_default=True)
@click.option("--train-arg", "extra", multiple=True, help="Extra argument passed to every `dhash train` (repeatable).")
def main(methods: str, bits_list: str, data: str, protocol: str, seeds: int, out: Path, extra: tuple[str, ...]) -> None:
    """Train + evaluate each (method, bits) cell on Fashion-MNIST; resumable."""
    out.mkdir(parents=True, exist_ok=True)
    results = out / "results.csv"
    rows = _load(results)
    done = {(r["data"], r["protocol"], r["method"], r["bits"], r["seed"]) for r in rows}
    cells = [(b, m, s) for b in map(int, bits_list.split(",")) for m in methods.split(",") for s in range(seeds)]
    for bits, method, seed in cells:
        if (data, protocol, method, str(bits), str(seed)) in done:
            continue
        console.print(f"[bold]{data} / {protocol} / {method} / {bits} bits / seed {seed}[/] …")
        row = run_cell(out, data, protocol, method, bits, seed, extra)
        rows.append({k: str(v) for k, v in row.items()})
        _save(results, rows)
        console.print(f"  mAP@all {row['map@all']}  mAP@1000 {row['map@1000']}  P@H<=2 {row['p@h<=2']}  ({row['train_seconds']} s)")
    write_reports(out, rows)
    table = Table("data", "protocol", "method", "bits", "seeds", "mAP@all", "mAP@1000", "P@H≤2", "NDCG@100", "train s")
    for r in summarise(rows):
        table.add_row(r["data"], r["protocol"], r["method"], str(r["bits"]), str(r["seeds"]), *(r[s] for s in SCORES), r["train_seconds"])
    console.print(table)
    console.print(f"wrote {results}, {out / 'results.md'}")


if __name__ == "__main__":
    main()
