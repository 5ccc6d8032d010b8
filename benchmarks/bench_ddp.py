"""Training images/s with 1 and with N processes (DistributedDataParallel, ``dhash train --processes N``).

Runs ``dhash train`` on Fashion-MNIST (small-cnn, DHA, 32 bits, batch 128, float32 unless
``--precision``) for each configuration and reads ``images_per_s`` of the last epoch from the run's
``metrics.jsonl`` (the whole training loop: data, forward, pair loss, backward, gradient all-reduce,
optimiser). Configurations: one process with 1 and with N threads, and N processes with 1 thread
each on the CPU; ``--device cuda``: one process against N processes, one GPU each.

    python benchmarks/bench_ddp.py                      # CPU: 1×1, 1×2 threads, 2×1 processes
    python benchmarks/bench_ddp.py --limit 20000 --epochs 2
    python benchmarks/bench_ddp.py --device cuda --processes 8
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

from rich.console import Console
from rich.table import Table


def train(workdir: Path, name: str, processes: int, threads: int, args: argparse.Namespace) -> float:
    """images/s of the last epoch of one ``dhash train`` run."""
    out = workdir / name
    command = [sys.executable, "-m", "dhash", "train", "--data", "fashion-mnist", "--method", "dha", "--bits", "32",
               "--limit", str(args.limit), "--epochs", str(args.epochs), "--batch-size", "128", "--val-fraction", "0",
               "--precision", args.precision, "--device", args.device, "--processes", str(processes), "-o", str(out)]
    if args.device == "cpu":
        command += ["--threads", str(threads)]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    epochs = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if '"epoch"' in line]
    return epochs[-1]["images_per_s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--processes", type=int, default=2, help="N")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--limit", type=int, default=10_000, help="training images")
    parser.add_argument("--epochs", type=int, default=2, help="the last one is timed")
    parser.add_argument("--precision", default="float32")
    args = parser.parse_args()
    n = args.processes
    runs = [("1 process", 1, 1), (f"1 process, {n} threads", 1, n), (f"{n} processes", n, 1)] if args.device == "cpu" \
        else [("1 process, 1 GPU", 1, 1), (f"{n} processes, {n} GPUs", n, 1)]
    table = Table("configuration", "processes", "threads each", "images/s", "speed-up",
                  title=f"dhash train (dha, small-cnn, batch 128) on {platform.processor() or platform.machine()}, {args.device}")
    with tempfile.TemporaryDirectory() as tmp:
        base = None
        for i, (name, processes, threads) in enumerate(runs):
            ips = train(Path(tmp), f"run{i}", processes, threads, args)
            base = base or ips
            table.add_row(name, str(processes), str(threads), f"{ips:,.0f}", f"{ips / base:.2f}×")
    Console().print(table)
    print(f"load average after: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")


if __name__ == "__main__":
    main()
