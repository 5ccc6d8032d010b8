"""Photo folders on a CPU: ``--backbone-mode frozen`` against ``finetune``, wall time and mAP.

Fashion-MNIST (or, with ``--dataset cifar10``, the natural-colour CIFAR-10: ``examples/get_data.sh cifar10``)
written as a folder of PNG files in class sub-folders (``--per-class`` images of each class from its
training set, 500 by default: 5,000 files, generated once into ``--workdir``), or any labelled folder
(``--data FOLDER``). Each cell runs the real commands, timed by the wall clock:

    dhash train --data FOLDER --method dha --bits 12 --protocol per-class --queries-per-class 100
                --train-per-class 300 --epochs 8 --backbone-mode MODE --threads N   (+ input size, views)
    dhash encode FOLDER --split query / --split database

and scores mAP@all of the query codes against the database codes (per class 100 queries; database:
every other image, the training images included). ``train s`` includes everything ``dhash train`` does
(start-up, checking the files, feature extraction or image decoding, epochs, validation); ``train CPU s``
is its user + system time (on a shared machine the wall clock also counts waiting for a core);
``features s`` is the frozen feature extraction inside it. A fresh run folder per cell, so every frozen cell extracts
its features from scratch (a cold cache).

    python benchmarks/bench_frozen.py                                   # frozen (default size) vs finetune
    python benchmarks/bench_frozen.py --modes frozen --sizes 64 96 128 224 --views none   # mAP against input size
    python benchmarks/bench_frozen.py --modes finetune --finetune-epochs 2   # a shorter finetune run
    python benchmarks/bench_frozen.py --dataset cifar10                 # the natural-colour check
    python benchmarks/bench_frozen.py --data photos/ --train-per-class 100 --queries-per-class 20
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image
from rich.console import Console
from rich.table import Table

from dhash.evaluate.metrics import mean_average_precision
from dhash.search.codes import read_code_file

DHASH = [str(Path(sys.executable).with_name("dhash"))]  # the console script beside this Python


def png_folder(dataset: str, workdir: Path, per_class: int) -> Path:
    """A built-in data set's first ``per_class`` training images of each class as PNG files, written once."""
    from dhash.learn.data import load_source

    root = workdir / f"{dataset}-png-{per_class}"
    if root.is_dir() and sum(1 for _ in root.rglob("*.png")) == per_class * 10:
        return root
    shutil.rmtree(root, ignore_errors=True)
    tmp = workdir / f".{root.name}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    source = load_source(dataset)
    train = np.flatnonzero(source.subset == 0)
    for c, name in enumerate(source.classes):
        folder = tmp / name.replace("/", "-")
        folder.mkdir(parents=True)
        for i in train[source.labels[train, c] > 0][:per_class]:
            Image.fromarray(source.images[i]).save(folder / f"{i:05d}.png")
    tmp.rename(root)
    return root


def load_average() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def run(args: list[str]) -> tuple[float, float]:
    """Run a dhash command; its wall-clock seconds and CPU seconds (user + system, all threads and workers)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    result = subprocess.run([*DHASH, *map(str, args)], capture_output=True, text=True)
    if result.returncode:
        raise SystemExit(f"failed: dhash {' '.join(map(str, args))}\n{result.stdout[-2000:]}{result.stderr[-2000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.perf_counter() - started, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


def cell(data: Path, out: Path, mode: str, size: int | None, views: str, epochs: int, opts: argparse.Namespace) -> dict:
    """Train, encode and score one setting; its row of the table."""
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    config = out / "settings.toml"
    config.write_text(f'cached_views = "{views}"\n' + (f"[backbone_options]\ninput_size = {size}\n" if size else ""))
    run_dir = out / "run"
    load_before = load_average()
    train_s, train_cpu = run(["train", "--config", config, "--data", data, "--method", opts.method, "--bits", opts.bits,
                   "--protocol", "per-class", "--queries-per-class", opts.queries_per_class,
                   "--train-per-class", opts.train_per_class, "--epochs", epochs, "--backbone-mode", mode,
                   "--threads", opts.threads, "-o", run_dir,
                   *(["--feature-cache", opts.feature_cache] if opts.feature_cache and mode == "frozen" else [])])
    encode_s = 0.0
    for split in ("query", "database"):
        encode_s += run(["encode", data, "--model", run_dir / "model.pt", "--split", split, "--threads", opts.threads,
                         "-o", out / f"{split}.h5"])[0]
    q, db = read_code_file(out / "query.h5"), read_code_file(out / "database.h5")
    score = mean_average_precision(q.codes, db.codes, q.labels, db.labels, q.bits, top_k=None, ties="stable")
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    features = next((m["features"] for m in metrics if "features" in m), None)
    config = json.loads((run_dir / "config.json").read_text())
    return {
        "data": data.name, "mode": mode, "input px": config["backbone_options"].get("input_size", 224),
        "views": views if mode == "frozen" else "-", "epochs": epochs, "train s": round(train_s, 1), "train CPU s": round(train_cpu, 1),
        "features s": features and features["seconds"], "computed": features and features["computed"], "encode s": round(encode_s, 1), "total s": round(train_s + encode_s, 1),
        "mAP@all": round(float(score), 4), "queries": len(q), "database": len(db),
        "load before": load_before, "load after": load_average(),  # 1, 5 and 15 minutes
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, help="a labelled image folder  [default: --dataset as PNG files]")
    parser.add_argument("--dataset", default="fashion-mnist", choices=["fashion-mnist", "cifar10"],
                        help="the built-in data set written as the PNG folder")
    parser.add_argument("--per-class", type=int, default=500, help="--dataset images per class in the folder")
    parser.add_argument("--workdir", type=Path, default=Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
                        / "dhash" / "bench_frozen", help="where the PNG folder and the runs go")
    parser.add_argument("--modes", nargs="+", default=["frozen", "finetune"], choices=["frozen", "finetune"])
    parser.add_argument("--sizes", nargs="+", type=int, default=[None], help="input sizes  [default: dhash's]")
    parser.add_argument("--views", nargs="+", default=["none"], choices=["none", "flip"], help="frozen: cached views")
    parser.add_argument("--method", default="dha")
    parser.add_argument("--bits", type=int, default=12)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--finetune-epochs", type=int, help="epochs of the finetune cells  [default: --epochs]")
    parser.add_argument("--train-per-class", type=int, default=300)
    parser.add_argument("--queries-per-class", type=int, default=100)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--feature-cache", type=Path, help="frozen: one feature cache shared by the cells (warm after "
                        "the first cell of each input size: then 'features s' no longer includes the extraction)")
    parser.add_argument("-o", "--output", type=Path, help="CSV file of the rows")
    opts = parser.parse_args()
    opts.workdir.mkdir(parents=True, exist_ok=True)
    data = opts.data or png_folder(opts.dataset, opts.workdir, opts.per_class)
    console = Console(width=200)
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else platform.processor()
    console.print(f"{data} · {cpu}, {os.cpu_count()} CPUs, --threads {opts.threads} · load average {load_average()}")
    rows = []
    for mode in opts.modes:
        for size in opts.sizes:
            for views in opts.views if mode == "frozen" else ["none"]:
                epochs = opts.finetune_epochs or opts.epochs if mode == "finetune" else opts.epochs
                name = f"{data.name}-{mode}-{size or 'default'}-{views}-{epochs}e"
                rows.append(cell(data, opts.workdir / "runs" / name, mode, size, views, epochs, opts))
                console.print(rows[-1])
    table = Table(title=f"{opts.method}, {opts.bits} bits, per class {opts.train_per_class} training images and "
                        f"{opts.queries_per_class} queries")
    shown = [k for k in rows[0] if k not in ("queries", "database")]
    for key in shown:
        table.add_column(key)
    for row in rows:
        table.add_row(*("" if row[k] is None else str(row[k]) for k in shown))
    console.print(table)
    if opts.output:
        with opts.output.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)


if __name__ == "__main__":
    main()
