"""Runtime helpers shared by training and encoding: device, precision, CPU threads, batched forward passes.

``resolve_device`` and ``resolve_precision`` turn the ``device`` / ``precision`` settings into torch
objects; ``set_cpu_threads`` and ``default_workers`` size the CPU work; ``build_network`` assembles
the network a method trains; ``forward_batches`` runs a network over a dataset without gradients,
skipping unreadable items; ``make_progress`` is the rich progress bar every long step shows.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from torch import nn
from torch.utils.data import DataLoader, Dataset, default_collate

from ..errors import DHashError
from .methods import Method, Params
from .models import HashNetwork, build_backbone


def make_progress(enabled: bool, console: Console | None = None, *fields: str) -> Progress:
    """A rich progress bar (a silent one unless ``enabled``): description, bar, done/total, the given
    ``{task.fields[...]}`` texts, elapsed and remaining time."""
    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        *(TextColumn(f) for f in fields), TimeElapsedColumn(), TimeRemainingColumn(),
        console=console, disable=not enabled,
    )


def build_network(backbone: str, options: dict[str, Any], bits: int, method: type[Method], num_classes: int,
                  pretrained: bool = False, weights: str | None = None, params: Params | None = None) -> HashNetwork:
    """The network a method trains: backbone, hash head unless the method codes features, classifier if
    the method with ``params`` (default: its defaults) needs one."""
    return HashNetwork(
        build_backbone(backbone, pretrained=pretrained, weights=weights, **options),
        bits,
        num_classes=num_classes if method.network_classifier(params or method.params_cls()) else None,
        hash_head=method.uses_hash_head,
    )


class _Tolerant(Dataset):
    """A dataset whose unreadable items come back as ``(None, reason, position)`` instead of raising."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, position: int) -> tuple[Any, ...]:
        try:
            x, y, _ = self.dataset[position]
        except Exception as exc:  # noqa: BLE001 - any decoding failure is reported, not fatal
            return None, str(exc).splitlines()[0] if str(exc) else type(exc).__name__, position
        return x, y, position


def _collate(items: list[tuple[Any, ...]]) -> tuple[Any, Any, torch.Tensor, list[tuple[int, str]]]:
    good = [item for item in items if item[0] is not None]
    failed = [(item[2], item[1]) for item in items if item[0] is None]
    if not good:
        return None, None, torch.zeros(0, dtype=torch.long), failed
    x, y, positions = default_collate(good)
    return x, y, positions, failed


def forward_batches(
    net: nn.Module, dataset: Dataset, device: torch.device, batch_size: int = 256, workers: int = 0,
    failures: list[tuple[int, str]] | None = None, progress: Progress | None = None, description: str = "",
) -> Iterator[tuple[torch.Tensor, Any]]:
    """Yield ``(positions, NetOutput)`` over ``dataset`` in order, in eval mode without gradients.

    With a ``failures`` list, unreadable items are skipped and appended to it as ``(position, reason)``;
    without one, the first unreadable item raises.
    """
    loader = DataLoader(_Tolerant(dataset), batch_size=batch_size, shuffle=False, num_workers=workers,
                        collate_fn=_collate, pin_memory=device.type == "cuda")
    task = progress.add_task(description, total=len(dataset)) if progress is not None else None  # type: ignore[arg-type]
    was_training = net.training
    net.eval()
    try:
        with torch.inference_mode():
            for x, _, positions, failed in loader:
                if failed:
                    if failures is None:
                        raise DHashError(failed[0][1])
                    failures.extend(failed)
                if x is not None:
                    yield positions, net(x.to(device, non_blocking=True))
                if task is not None:
                    progress.advance(task, len(positions) + len(failed))  # type: ignore[union-attr]
    finally:
        net.train(was_training)


def default_workers(source: Any) -> int:
    """Data-loading processes: none for in-memory data, ``min(8, CPUs − 1)`` (at least 1) for image files."""
    return 0 if source.kind != "paths" else max(1, min(8, cpu_count() - 1))


def resolve_device(name: str) -> torch.device:
    """``auto`` → CUDA when available, else CPU; an unavailable CUDA request is a user error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise DHashError(f"--device {name}: no CUDA device is available (use --device cpu)")
    try:
        return torch.device(name)
    except RuntimeError:
        raise DHashError(f"--device {name}: not a device (use auto, cpu, cuda or cuda:N)") from None


def resolve_precision(name: str, device: torch.device) -> torch.dtype | None:
    """The autocast type of training's forward pass, or None for plain float32.

    ``mixed`` (and ``auto`` on CUDA): float16 on CUDA, with a gradient scaler; bfloat16 on the CPU.
    ``auto`` on the CPU: bfloat16 where the CPU computes it natively (AVX-512 BF16 or AMX; 1.3–1.8×
    faster for the small networks), else float32. Losses are always computed in float32.
    """
    if name == "float32":
        return None
    if device.type == "cuda":
        return torch.float16
    return torch.bfloat16 if name == "mixed" or cpu_has_native_bfloat16() else None


def cpu_has_native_bfloat16() -> bool:
    """Whether oneDNN runs bfloat16 natively on this CPU."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def cpu_count() -> int:
    """The CPUs this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def set_cpu_threads(threads: int | None = None) -> int:
    """Set torch's CPU threads: ``threads``, else ``OMP_NUM_THREADS`` when set, else every CPU this process may use.

    Results on the CPU are reproducible for a given number of threads (the reductions of the
    convolution gradients are split by thread). On a busy shared machine fewer threads than CPUs
    can be much faster: PyTorch's threads spin while they wait for each other.
    """
    if threads is not None:
        torch.set_num_threads(threads)
    elif "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(cpu_count())
    return torch.get_num_threads()
