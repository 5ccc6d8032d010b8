"""Training and encoding with several processes: ``torchrun --nproc_per_node=N -m dhash train ...``.

torchrun (or ``dhash train --processes N``, which runs torchrun's launcher) starts N copies of the
command with ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` and the rendezvous address in the
environment; ``start`` joins them into a process group (nccl on CUDA, gloo on the CPU). Training then
gives the result of one process with the same global batch (``--batch-size``, split evenly):

- data: ``ShardSampler`` deals each global batch of the single-process shuffle out in contiguous
  slices, rank r taking rows [r·B, (r+1)·B); augmentation is seeded per item (``ImageDataset``), so
  an image gets the same shift on whichever process loads it;
- pair losses: ``GlobalScope`` is the pair-loss base's global-batch hook (``methods/pairs.py``): the
  outputs and labels of every process are gathered (``_Gather``: gradients flow back to each
  process's own rows) and every sum of the loss is summed over the processes, so each process holds
  the loss L of the global batch. Backward passes of the collectives add the gradients of all N
  copies of L, so each process's gradient is N·∂L/∂θ restricted to its rows; DistributedDataParallel
  averages over the processes, which gives ∂L/∂θ: exactly the single-process gradient, no rescaling;
- BatchNorm normalises over the global batch: ``SyncBatchNorm`` on CUDA, ``GlobalBatchNorm`` on the
  CPU (this torch's SyncBatchNorm refuses CPU tensors); dropout draws the global batch's mask on every
  process and keeps its own rows (``GlobalDropout``), as one process would draw it;
- state kept per item (DPSH's memory bank) is refreshed from the gathered batch, so every process
  holds the same copy; HashNet's schedule follows the global step, which all processes share;
- validation, BatchNorm recalibration and the post-training step (SDSH's rotation search) run on
  rank 0 alone (``finish`` turns the global layers back into plain ones first); rank 0 writes every
  file. A process that stops makes the others stop with ``PeerFailure`` at their next collective.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import Sampler

from ..errors import DHashError
from .methods.pairs import LOCAL, BatchScope
from .runtime import resolve_device

T = TypeVar("T")


@dataclass(frozen=True)
class Processes:
    """This process's place among the processes of a run (one process: world 1, rank 0)."""

    world: int = 1
    rank: int = 0
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """Rank 0: the process that validates, shows progress and writes files."""
        return self.rank == 0

    def broadcast(self, value: T) -> T:
        """Rank 0's ``value`` (any picklable object), on every process."""
        if self.world == 1:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def on_main(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on rank 0 and give its result to every process; a ``DHashError`` there is raised
        on every process, so that all stop with the same message."""
        result: tuple[bool, Any] = (True, None)
        if self.main:
            try:
                result = (True, fn())
            except DHashError as exc:
                result = (False, str(exc))
        ok, value = self.broadcast(result)
        if not ok:
            raise DHashError(value)
        return value

    def gather(self, value: T) -> list[T]:
        """Every process's ``value``, in rank order (on every process)."""
        if self.world == 1:
            return [value]
        out: list[Any] = [None] * self.world
        dist.all_gather_object(out, value)
        return out


def env_processes() -> Processes:
    """The place torchrun's environment gives this process (world 1 outside torchrun)."""
    try:
        return Processes(int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("RANK", "0")),
                         int(os.environ.get("LOCAL_RANK", "0")))
    except ValueError:
        raise DHashError("WORLD_SIZE, RANK and LOCAL_RANK must be integers (as torchrun sets them)") from None


def start(device_name: str) -> tuple[Processes, torch.device]:
    """Join the run's process group when started by torchrun; return this process's place and device
    (``cuda:LOCAL_RANK`` when the run trains on CUDA)."""
    processes = env_processes()
    device = resolve_device(device_name)
    if processes.world == 1:
        return processes, device
    if device.type == "cuda":
        device = torch.device("cuda", processes.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", device_id=device if device.type == "cuda" else None)
    return processes, device


def stop() -> None:
    """Leave the process group (when one was joined)."""
    if dist.is_initialized():
        dist.destroy_process_group()


class PeerFailure(DHashError):
    """Another process of the run stopped (it failed, or was killed)."""


def peer_failure(processes: Processes, exc: BaseException) -> PeerFailure:
    """The one-line error for a collective that failed because another process is gone."""
    reason = " ".join(str(exc).split())[:160] or type(exc).__name__
    return PeerFailure(f"training process {processes.rank} of {processes.world}: another process of the run stopped, "
                       f"so this one stops too ({reason}); the failing process printed the cause")


def is_peer_failure(exc: BaseException) -> bool:
    """Whether ``exc`` is a collective failing because a peer process is gone."""
    return isinstance(exc, dist.DistError) or (isinstance(exc, RuntimeError) and "gloo" in str(exc).lower())


class _Gather(torch.autograd.Function):
    """All-gather along dim 0 whose backward hands each process the summed gradient of its own rows
    (all-reduce, then slice: works on every backend, gloo included)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, x.contiguous())
        ctx.rows, ctx.rank = len(x), dist.get_rank()
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)
        return grad[ctx.rank * ctx.rows : (ctx.rank + 1) * ctx.rows]


class _Sum(torch.autograd.Function):
    """All-reduce (sum) whose backward all-reduces the gradient: the adjoint of summing over processes."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        x = x.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(x)
        return x

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        grad = grad.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(grad)
        return grad


def all_reduce(x: torch.Tensor) -> torch.Tensor:
    """Sum of ``x`` over the processes, differentiable when ``x`` needs a gradient."""
    if not x.requires_grad:
        x = x.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(x)
        return x
    return _Sum.apply(x)


class GlobalScope(BatchScope):
    """The pair-loss base's global-batch hook under DistributedDataParallel (see the module docstring)."""

    def __init__(self, processes: Processes) -> None:
        self.processes = processes

    def gather(self, x: torch.Tensor) -> torch.Tensor:
        if not x.requires_grad:
            parts = [torch.empty_like(x) for _ in range(self.processes.world)]
            dist.all_gather(parts, x.contiguous())
            return torch.cat(parts)
        return _Gather.apply(x)

    def offset(self, rows: int) -> int:
        return self.processes.rank * rows

    def sum(self, x: torch.Tensor) -> torch.Tensor:
        return all_reduce(x.sum())


class ShardSampler(Sampler[int]):
    """Rank r's items of the single-process shuffle: of each global batch of ``world · batch`` items,
    rows [r·batch, (r+1)·batch). The permutation is ``torch.randperm`` on the loader's ``generator``,
    as ``DataLoader(shuffle=True, generator=...)`` draws it, so the global batches are those of one
    process. (torch's DistributedSampler deals items out strided and seeds by seed + epoch, so its
    global batches differ from one process's.) Incomplete global batches are dropped."""

    def __init__(self, size: int, batch: int, processes: Processes, generator: torch.Generator) -> None:
        self.size, self.batch, self.processes, self.generator = size, batch, processes, generator

    def __len__(self) -> int:
        return self.size // (self.batch * self.processes.world) * self.batch

    def __iter__(self) -> Iterator[int]:
        order = torch.randperm(self.size, generator=self.generator)
        step, start = self.batch * self.processes.world, self.batch * self.processes.rank
        for first in range(0, len(self) // self.batch * step, step):
            yield from order[first + start : first + start + self.batch].tolist()


class GlobalBatchNorm(nn.modules.batchnorm._BatchNorm):
    """Batch normalisation over the global batch of all processes, for the CPU (gloo): the sums are
    all-reduced (two passes: mean, then the centred squares, as a single process computes them).
    Every process holds an equal share of the batch (``local_batch``)."""

    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.dim() < 2:
            raise ValueError(f"expected at least 2 dimensions, got {x.dim()}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return super().forward(x)
        dims = [0, *range(2, x.dim())]
        shape = [1, -1] + [1] * (x.dim() - 2)
        n = x.numel() // x.shape[1] * dist.get_world_size()
        mean = all_reduce(x.sum(dims)) / n
        centred = x - mean.view(shape)
        var = all_reduce(centred.pow(2).sum(dims)) / n
        y = centred * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
                self.running_mean.mul_(1 - factor).add_(mean.detach(), alpha=factor)
                self.running_var.mul_(1 - factor).add_(var.detach() * (n / max(n - 1, 1)), alpha=factor)
        return y


class GlobalDropout(nn.Dropout):
    """Dropout whose mask is the rows of this process in the mask one process would draw for the
    whole global batch (every process draws it from the same seeded generator)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        world, rank = dist.get_world_size(), dist.get_rank()
        noise = torch.empty((len(x) * world, *x.shape[1:]), dtype=x.dtype, device=x.device).bernoulli_(1 - self.p)
        return x * noise[rank * len(x) : (rank + 1) * len(x)].div_(1 - self.p)


def _swap(module: nn.Module, convert: Callable[[nn.Module], nn.Module | None]) -> nn.Module:
    """``module`` with every submodule that ``convert`` maps to a new module replaced (parameters shared)."""
    new = convert(module)
    if new is not None:
        return new
    for name, child in module.named_children():
        module.add_module(name, _swap(child, convert))
    return module


def _batch_norm_like(old: nn.modules.batchnorm._BatchNorm, cls: type) -> nn.Module:
    new = cls(old.num_features, old.eps, old.momentum, old.affine, old.track_running_stats)
    new.plain = getattr(old, "plain", type(old))  # the class to return to
    if old.affine:
        new.weight, new.bias = old.weight, old.bias
    if old.track_running_stats:
        new.running_mean, new.running_var, new.num_batches_tracked = old.running_mean, old.running_var, old.num_batches_tracked
    new.train(old.training)
    return new


def _to_global(batch_norm: type) -> Callable[[nn.Module], nn.Module | None]:
    def convert(module: nn.Module) -> nn.Module | None:
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            return _batch_norm_like(module, batch_norm)
        if type(module) is nn.Dropout:
            return GlobalDropout(module.p)
        return None
    return convert


def _to_plain(module: nn.Module) -> nn.Module | None:
    if isinstance(module, (GlobalBatchNorm, nn.SyncBatchNorm)):
        return _batch_norm_like(module, module.plain)
    if isinstance(module, GlobalDropout):
        return nn.Dropout(module.p)
    return None


def prepare(net: nn.Module, method: nn.Module, processes: Processes, device: torch.device) -> nn.Module:
    """Make ``net`` and ``method`` train on the global batch (module docstring) and return the module to
    call in training: ``net`` itself for one process, else its DistributedDataParallel wrapper."""
    if processes.world == 1:
        return net
    _swap(net, _to_global(nn.SyncBatchNorm if device.type == "cuda" else GlobalBatchNorm))
    method.scope = GlobalScope(processes)
    return nn.parallel.DistributedDataParallel(
        net, device_ids=[device.index] if device.type == "cuda" else None,
        forward_sync_buffers=False,  # running statistics are global, hence equal, on every process
    )


def use_every_output(loss: torch.Tensor, out: Any, processes: Processes) -> torch.Tensor:
    """``loss`` plus zero times every network output, under DistributedDataParallel.

    DDP all-reduces a bucket of gradients once each of its parameters has one; a head whose output
    the loss ignores (expo's classifier after pre-training, its hash head during it) would never get
    one and the bucket would stay unreduced. With the zero term such a head gets a zero gradient
    instead of none: the same update for the used parameters; the ignored head moves only by its
    optimiser's momentum, and the codes do not depend on it."""
    if processes.world == 1:
        return loss
    return loss + sum(t.sum() for t in (out.h, out.logits) if t is not None and t.requires_grad) * 0.0


def average_method_gradients(method: nn.Module, processes: Processes) -> None:
    """Average the gradients of the method's own parameters (the classifier's read-out), which
    DistributedDataParallel does not see."""
    if processes.world == 1:
        return
    for p in method.parameters():
        if p.grad is not None:
            dist.all_reduce(p.grad)
            p.grad.div_(processes.world)


def finish(net: nn.Module, method: nn.Module) -> nn.Module:
    """Undo ``prepare``: plain BatchNorm and dropout layers (same parameters), the method's own batch scope."""
    method.scope = LOCAL
    return _swap(net, _to_plain)


def local_batch(batch_size: int, processes: Processes) -> int:
    """Each process's share of the global batch; it must divide evenly."""
    if batch_size % processes.world:
        raise DHashError(f"--batch-size {batch_size}: the global batch must split evenly across {processes.world} "
                         f"processes (use a multiple of {processes.world})")
    return batch_size // processes.world


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (for the rendezvous of a one-machine run)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(processes: int, args: list[str]) -> None:
    """Run ``python -m dhash ARGS`` as ``processes`` processes on this machine with torchrun's launcher
    (rendezvous on 127.0.0.1); a failed or killed process stops the others and raises ``DHashError``."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run

    options = parse_args([f"--nproc-per-node={processes}", "--master-addr=127.0.0.1", f"--master-port={free_port()}",
                          "--max-restarts=0", "--monitor-interval=0.5", "-m", "dhash", *args])
    try:
        run(options)
    except ChildFailedError as exc:
        failures = [f"process {f.local_rank} {_how(f.exitcode)}" for f in exc.failures.values()]
        raise DHashError(f"{processes} training processes: {'; '.join(failures)}; the others were stopped "
                         "(the failing process's message is above)") from None


def _how(exitcode: int) -> str:
    if exitcode < 0:
        import signal

        try:
            return f"was killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"was killed by signal {-exitcode}"
    return f"exited with code {exitcode}"


def encode_shards(processes: Processes, count: int, encode: Callable[[slice], tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Each process ``encode``s a contiguous slice of ``count`` items (slice r of ``world`` near-equal
    ones); every process gets all results in rank order, so concatenated they are in item order."""
    bounds = [count * r // processes.world for r in range(processes.world + 1)]
    return processes.gather(encode(slice(bounds[processes.rank], bounds[processes.rank + 1])))
