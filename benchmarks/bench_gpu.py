"""CPU against GPU: training and encoding images/s of small-cnn and efficientnet-lite0, and exact
Hamming k-NN queries/s of the torch search (``dhash.search.torch_search``) at 1M–10M codes.

Training: dhash's training step (network in channels-last, autocast at the precision ``--precision
auto`` picks for the device — float16 with a gradient scaler on CUDA, bfloat16 on CPUs that compute
it natively, else float32 — DHA's loss in float32, Adam) on random images already on the device:
the network's throughput, without the data pipeline. Encoding: the forward pass in inference mode
and the packed codes copied back to the host. Search: 64-bit uniform random codes, k = 10; the
results of the first queries are compared with the compiled CPU core (column "exact").

    python benchmarks/bench_gpu.py                           # every device present, full sizes
    python benchmarks/bench_gpu.py --devices cpu --quick     # CPU only, small sizes (a minute)
    python benchmarks/bench_gpu.py --devices cuda -o gpu.csv
"""
from __future__ import annotations

import argparse
import csv
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from dhash.learn.runtime import resolve_device, resolve_precision, set_cpu_threads
from dhash.learn.encode import build_network
from dhash.learn.methods import TrainState, get_method, parse_params
from dhash.learn.train import _float
from dhash.search import LinearIndex, pack_codes
from dhash.search.torch_search import TorchIndex

BACKBONES = {"small-cnn": {"in_channels": 1, "size": 28}, "efficientnet-lite0": {}}
BITS, CLASSES = 32, 10


def parse_n(text: str) -> int:
    scale = {"K": 1_000, "M": 1_000_000}.get(text[-1].upper(), 1)
    return int(float(text.rstrip("KMkm")) * scale)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(step, device: torch.device, warmup: int, steps: int) -> float:
    """Seconds per call of ``step`` after ``warmup`` calls (the device synchronised around the timing)."""
    for _ in range(warmup):
        step()
    synchronize(device)
    started = time.perf_counter()
    for _ in range(steps):
        step()
    synchronize(device)
    return (time.perf_counter() - started) / steps


def network_rows(backbone: str, device: torch.device, batch: int, warmup: int, steps: int) -> list[dict]:
    """Training and encoding images/s of ``backbone`` on ``device``."""
    torch.manual_seed(0)
    method_cls = get_method("dha")
    net = build_network(backbone, BACKBONES[backbone], BITS, method_cls, CLASSES).to(device,
                                                                                     memory_format=torch.channels_last)
    method = method_cls(BITS, CLASSES, parse_params(method_cls, {})).to(device)
    spec = net.input_spec
    x = torch.randn(batch, spec.channels, spec.size, spec.size, device=device).to(memory_format=torch.channels_last)
    y = torch.eye(CLASSES, device=device)[torch.randint(0, CLASSES, (batch,), device=device)]
    method.begin_training(y)
    autocast = resolve_precision("auto", device)
    scaler = torch.amp.GradScaler(device.type, enabled=autocast == torch.float16)
    optimizer = torch.optim.Adam([*net.parameters(), *method.parameters()], lr=1e-4)
    state = TrainState(0, 1, 0, 1, torch.arange(batch, device=device))

    def train_step() -> None:
        with torch.autocast(device.type, dtype=autocast, enabled=autocast is not None):
            out = net(x)
        loss, _ = method.loss(_float(out), y, state)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    def encode_step() -> None:
        with torch.inference_mode():
            pack_codes(method.project(net(x).h.float()))

    net.train()
    train_s = timed(train_step, device, warmup, steps)
    net.eval()
    encode_s = timed(encode_step, device, warmup, steps)
    precision = str(autocast or torch.float32).removeprefix("torch.")
    base = {"device": str(device), "model": backbone, "batch": batch, "size": spec.size}
    return [{**base, "task": "train", "precision": precision, "per_s": batch / train_s, "exact": ""},
            {**base, "task": "encode", "precision": "float32", "per_s": batch / encode_s, "exact": ""}]


def search_rows(n: int, device: torch.device, queries: int, check: int, k: int = 10) -> list[dict]:
    """Queries/s of the torch search over ``n`` 64-bit codes, and whether it matches the CPU core."""
    rng = np.random.default_rng(0)
    db = rng.integers(0, 256, (n, 8), dtype=np.uint8)
    q = rng.integers(0, 256, (queries, 8), dtype=np.uint8)
    index = TorchIndex(db, 64, str(device))
    index.search(q[:2], k)  # warm-up
    synchronize(device)
    started = time.perf_counter()
    dist, idx = index.search(q, k)
    seconds = time.perf_counter() - started
    core = LinearIndex(64)
    core.add(db)
    d, i = core.search(q[:check], k)
    exact = bool(np.array_equal(d, dist[:check]) and np.array_equal(i, idx[:check]))
    return [{"device": str(device), "model": f"{n:,} codes × 64 bits", "batch": queries, "size": "",
             "task": f"search k={k}", "precision": "", "per_s": queries / seconds, "exact": exact}]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--devices", nargs="+", default=["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    ap.add_argument("--backbones", nargs="*", choices=list(BACKBONES), default=list(BACKBONES), help="(none: no networks)")
    ap.add_argument("--batch", type=int, nargs=2, default=[256, 64], metavar=("SMALL", "EFFICIENTNET"),
                    help="batch sizes of small-cnn and efficientnet-lite0")
    ap.add_argument("--steps", type=int, default=20, help="timed steps per measurement (CPU: a quarter)")
    ap.add_argument("--n", nargs="*", help="database sizes of the search [default: 1M 10M; --quick: 100K]")
    ap.add_argument("--queries", type=int, default=1000, help="queries per search on CUDA (CPU: 1/50)")
    ap.add_argument("--threads", type=int, help="CPU threads [default: all]")
    ap.add_argument("--quick", action="store_true", help="small batches, 2 steps, 50 queries: a test run")
    ap.add_argument("-o", "--output", type=Path, help="also write the rows as CSV here")
    args = ap.parse_args()
    if args.quick:
        args.batch, args.steps, args.queries = [32, 4], 2, 50
    if args.n is None:
        args.n = ["100K"] if args.quick else ["1M", "10M"]
    set_cpu_threads(args.threads)

    console = Console(width=140)
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no CUDA device"
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {gpu}, torch {torch.__version__}"
    console.print(f"machine: {machine}; load average {os.getloadavg()[0]:.1f}", highlight=False)
    rows: list[dict] = []
    for name in args.devices:
        device = resolve_device(name)
        cpu = device.type == "cpu"
        steps = max(1, args.steps // 4) if cpu else args.steps
        for backbone, batch in zip(BACKBONES, args.batch):
            if backbone in args.backbones:
                rows += network_rows(backbone, device, batch, 1 if cpu else 3, steps)
                console.print(f"{device} {backbone}: {rows[-2]['per_s']:,.0f} train, {rows[-1]['per_s']:,.0f} "
                              f"encode images/s", highlight=False)
        for n in args.n:
            rows += search_rows(parse_n(n), device, max(2, args.queries // 50) if cpu else args.queries, 2 if cpu else 20)
            console.print(f"{device} search {rows[-1]['model']}: {rows[-1]['per_s']:,.1f} q/s", highlight=False)

    table = Table(title=f"images/s and queries/s ({machine})")
    for col in ("device", "task", "model", "batch", "size", "precision", "per s", "exact"):
        table.add_column(col, justify="left" if col in ("device", "task", "model", "precision") else "right")
    for r in rows:
        table.add_row(r["device"], r["task"], r["model"], str(r["batch"]), str(r["size"]), r["precision"],
                      f"{r['per_s']:,.1f}", str(r["exact"]))
    console.print(table)
    if args.output is not None:
        with open(args.output, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        console.print(f"wrote {args.output}", highlight=False)


if __name__ == "__main__":
    main()
