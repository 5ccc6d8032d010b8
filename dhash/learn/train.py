"""The training loop behind ``dhash train``.

``train(config, output)`` loads the data, draws and saves the split, builds the network and the
method, then either fits a closed-form method (LSH, ITQ: ``method.fit`` on backbone features of the
training split) or runs gradient training followed by the method's ``post_train`` step (SDSH's
rotation) on the raw outputs of the training split. It writes the run folder described in
``dhash.learn.run`` and returns the path of ``model.pt``.

Training details:
  - optimiser ``adam`` or ``sgd`` (momentum), with ``weight_decay``; on a pretrained backbone (or one
    loaded from ``--weights``) the fresh heads learn ``head_lr_mult`` (10) times faster;
  - learning rate per step: ``cosine`` (half a cosine from ``lr`` to 0 over the run), ``step``
    (× ``lr_gamma`` every ``lr_step`` epochs) or ``none``;
  - mixed precision (``precision``, see ``dhash.learn.runtime.resolve_precision``): float16 autocast with a
    gradient scaler on CUDA, bfloat16 autocast on CPUs that compute it natively, the loss in float32;
    on the CPU ``threads`` threads (default: all CPUs); image batches in channels-last layout (faster
    convolutions on both);
  - every epoch reseeds shuffling, augmentation and dropout from ``(seed, epoch)`` (data-loader
    workers too), so a run is deterministic on the CPU and ``resume`` repeats an uninterrupted run;
  - the last incomplete batch of an epoch is dropped (pair losses need full batches);
  - model selection (gradient methods): ``val_fraction`` of the training items (per class, seeded,
    saved in the split) are held out; every ``val_every`` epochs and after the last, their codes are
    scored (mAP@all of a seeded fifth as queries against the other four fifths) and the best epoch
    becomes ``model.pt``, the last ``last.pt`` when they differ; ``patience`` stops early. The test
    queries are never looked at. dhash's choice: validation codes use the BatchNorm statistics
    tracked during training; the kept weights are recalibrated once before they are saved;
  - under torchrun, N processes train with DistributedDataParallel on the global batch and give what
    one process gives (``dhash.learn.distributed``); rank 0 validates and writes the files.
"""
from __future__ import annotations

import dataclasses
import math
import random
import time
import warnings
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from torch.utils.data import DataLoader

from .. import __version__
from .config import resolve, resolve_for_data
from .data import ImageDataset, Source, Split, build_transform, load_source, make_split
from .data.splits import hold_out_validation
from ..evaluate.metrics import mean_average_precision
from ..search.codes import pack_codes
from ..errors import DHashError
from .methods import Method, NetOutput, TrainState, get_method, parse_params
from .models import HashNetwork
from . import distributed
from .distributed import Processes
from .run import Run, plain, save_model
from .settings import DEFAULTS, RUNTIME_KEYS, check_settings
from .runtime import build_network, forward_batches, make_progress, resolve_precision, set_cpu_threads
from .frozen import prepare_training, resolve_backbone_mode


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during training; the message says which checkpoint is left and how to resume."""


def effective_config(run: Run, cli: dict[str, Any], file: dict[str, Any] | None = None,
                     resume: bool = False) -> dict[str, Any]:
    """The config to train with: resolved from the options, or, with ``resume``, the run's saved one.

    A resumed run keeps its config; only ``RUNTIME_KEYS`` (device, workers, threads, data_dir) may
    change, and other settings given again must match the saved ones.
    """
    if not resume:
        return resolve(cli, file)
    given = {**(file or {}), **cli}
    saved = {**DEFAULTS, **check_settings(run.read_config(), str(run.config))}
    again = resolve({"data": saved["data"], "method": saved["method"], **given})
    changed = []
    for key, value in given.items():
        if key in RUNTIME_KEYS:
            continue
        if key in ("params", "backbone_options"):
            changed += [f"{key}.{k}" for k in value if again[key].get(k) != saved[key].get(k)]
        elif again[key] != saved.get(key):
            changed.append(key)
    if changed:
        raise DHashError(
            f"{run.folder}: --resume continues the saved run, but {', '.join(changed)} differ from its config.json "
            f"(only {', '.join(RUNTIME_KEYS)} may change)"
        )
    return {**saved, **{k: given[k] for k in RUNTIME_KEYS if k in given}}


def _epoch_seed(seed: int, epoch: int) -> int:
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1, np.uint64)[0] >> 1)


def _seed_all(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


def _seed_worker(worker_id: int) -> None:
    _seed_all(torch.initial_seed())


def _split(config: dict[str, Any], source: Source, trainable: bool) -> Split:
    """Draw the protocol's split; ``limit`` keeps a seeded random subset of the training part, and
    gradient methods hold out ``val_fraction`` of it for model selection."""
    split = make_split(source, config["protocol"], config["seed"], config["queries_per_class"], config["train_per_class"])
    if config["limit"] is not None and config["limit"] < len(split.train):
        rng = np.random.default_rng(config["seed"])
        split.train = np.sort(rng.choice(split.train, config["limit"], replace=False))
    if trainable:
        hold_out_validation(split, source, config["val_fraction"], config["seed"])
    return split


def _lr_factor(config: dict[str, Any], steps_per_epoch: int):
    epochs, decay = config["epochs"], config["lr_decay"]
    every = config["lr_step"] or max(1, math.ceil(epochs / 3))

    def factor(step: int) -> float:
        if decay == "cosine":
            return 0.5 * (1 + math.cos(math.pi * min(step / (epochs * steps_per_epoch), 1.0)))
        if decay == "step":
            return config["lr_gamma"] ** (step // steps_per_epoch // every)
        return 1.0

    return factor


def _optimizer(config: dict[str, Any], net: HashNetwork, method: Method) -> torch.optim.Optimizer:
    lr = config["lr"]
    mult = config["head_lr_mult"] if config["pretrained"] or config["weights"] else 1.0
    groups = [
        {"params": list(net.backbone_parameters()), "lr": lr},
        {"params": [*net.head_parameters(), *method.parameters()], "lr": lr * mult},
    ]
    groups = [g for g in groups if g["params"]]
    if config["optimizer"] == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=config["momentum"], weight_decay=config["weight_decay"])
    return torch.optim.Adam(groups, lr=lr, weight_decay=config["weight_decay"])


def _outputs(net: HashNetwork, source: Source, indices: np.ndarray, device: torch.device, workers: int,
             progress: bool, console: Console | None, description: str) -> np.ndarray:
    """Raw network outputs ``h`` (float32, N × D) of ``source[indices]``, without augmentation."""
    dataset = ImageDataset(source, indices, build_transform(net.input_spec, train=False))
    with make_progress(progress, console) as bar:
        batches = forward_batches(net, dataset, device, 256, workers, None, bar, description)
        return torch.cat([out.h.float().cpu() for _, out in batches]).numpy()


class _Validation:
    """Scores the held-out items' codes and remembers the best epoch's weights (on the CPU)."""

    def __init__(self, source: Source, split: Split, seed: int) -> None:
        order = np.random.default_rng([seed, 2]).permutation(split.validation)
        cut = max(1, len(order) // 5)
        self.source, self.query, self.database = source, np.sort(order[:cut]), np.sort(order[cut:])
        self.best: dict[str, Any] | None = None  # epoch, val_map, network, method (state dicts)
        self.since_best = 0  # validations since the best one

    @property
    def active(self) -> bool:
        return len(self.query) >= 1 and len(self.database) >= 1

    def score(self, net: HashNetwork, method: Method, device: torch.device, workers: int) -> float:
        net.eval()
        method.eval()
        codes = {name: pack_codes(method.project(torch.from_numpy(
            _outputs(net, self.source, part, device, workers, False, None, "Validation"))))
            for name, part in (("query", self.query), ("database", self.database))}
        labels = self.source.labels
        return float(mean_average_precision(codes["query"], codes["database"], labels[self.query],
                                            labels[self.database], method.bits, top_k=None, ties="stable"))

    def update(self, epoch: int, value: float, net: HashNetwork, method: Method) -> None:
        """Keep the weights when ``value`` beats the best so far (ties keep the earlier epoch)."""
        if self.best is not None and value <= self.best["val_map"]:
            self.since_best += 1
            return
        copy = {name: {k: v.detach().to("cpu", copy=True) for k, v in m.state_dict().items()}
                for name, m in (("network", net), ("method", method))}  # a copy: training goes on in place
        self.best = {"epoch": epoch, "val_map": value, **copy}
        self.since_best = 0


def _recalibrate_batchnorm(net: HashNetwork, source: Source, indices: np.ndarray, device: torch.device,
                           workers: int, max_images: int = 10_000) -> None:
    """Recompute BatchNorm running statistics of the final weights over (up to) ``max_images`` training images.

    The running averages kept during training lag behind weights that changed fast (short runs,
    attention gates that rescale features); evaluation would then see shifted features. dhash's
    choice: one exact pass (cumulative averages), deterministic, before the model is saved.
    """
    norms = [m for m in net.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    dataset = ImageDataset(source, indices[:max_images], build_transform(net.input_spec, train=False))
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the pass
    net.train()
    with torch.no_grad():
        for x, _, _ in DataLoader(dataset, batch_size=256, num_workers=workers):
            net(x.to(device))
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
    net.eval()


def _to_device(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A batch on ``device``; image batches (N × C × H × W) in channels-last layout."""
    if x.dim() == 4:
        return x.to(device, non_blocking=True, memory_format=torch.channels_last)
    return x.to(device, non_blocking=True)


def _float(out: NetOutput) -> NetOutput:
    """Network outputs in float32 (the loss is computed outside autocast)."""
    return NetOutput(*(None if t is None else t.float() for t in (out.h, out.logits)))


def _number(value: Any) -> float:
    """A loss part as a float (methods report floats; a tensor is detached first)."""
    return value.detach().item() if isinstance(value, torch.Tensor) else float(value)


def _cpu(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu() for k, v in state.items()}


def train(config: dict[str, Any], output: str | Path, resume: bool = False, progress: bool = False,
          console: Console | None = None) -> Path:
    """Train as ``config`` says (see ``dhash.learn.settings``), writing the run folder ``output``; return ``model.pt``.

    With ``resume``, continue from the run's last checkpoint. Ctrl-C raises ``TrainingInterrupted``
    (a ``KeyboardInterrupt``) after the last finished epoch's checkpoint has been left in place.
    """
    run = Run(output)
    processes, device = distributed.start(config["device"])
    progress = progress and processes.main
    if not resume:
        processes.on_main(run.check_new)
    if device.type == "cpu":
        set_cpu_threads(config["threads"])
    else:
        torch.backends.cudnn.benchmark = True
    source = load_source(config["data"], config["data_dir"], progress=progress)
    if source.labels is None:
        raise DHashError(f"{config['data']}: has no labels; training needs labelled data")
    method_cls = get_method(config["method"])
    config = resolve_for_data(config, source, method_cls)
    config["backbone_mode"] = resolve_backbone_mode(config, source, device, resume, processes.world)
    if resume and run.split.exists():
        split = Split.load(run.split)
        split.check(source)
    else:
        split = _split(config, source, method_cls.trainable)  # the same on every process

        def write() -> None:
            run.folder.mkdir(parents=True, exist_ok=True)
            split.save(run.split)
            run.write_config(config)
        processes.on_main(write)
    if len(split.train) < 2:
        raise DHashError(f"{config['data']}: the training split has {len(split.train)} items; at least 2 are needed")

    bits, num_classes = config["bits"], source.num_classes
    _seed_all(config["seed"])
    params = parse_params(method_cls, config["params"])
    net = build_network(config["backbone"], config["backbone_options"], bits, method_cls, num_classes,
                        config["pretrained"], config["weights"], params).to(device, memory_format=torch.channels_last)
    method = method_cls(bits, num_classes, params).to(device)
    # training may see only the heads over cached features; export gives the full network (dhash.learn.frozen)
    net, data, data_split, loop, export = prepare_training(config, run, source, split, net, device, progress, console,
                                                           processes.world)
    validation = _Validation(data, data_split, config["seed"])
    if method_cls.trainable:
        with make_progress(progress, console, "loss {task.fields[loss]:.4f}", "{task.fields[ips]:,.0f} img/s") as bar, \
                warnings.catch_warnings():
            # the gradient scaler skips steps whose gradients overflowed; the schedule still advances
            warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler\.step\(\)` before `optimizer")
            try:
                epochs, steps, seconds = _gradient_training(loop, run, data, data_split, net, method, device, resume,
                                                            bar, validation, processes)
            except Exception as exc:
                if processes.world > 1 and distributed.is_peer_failure(exc):
                    raise distributed.peer_failure(processes, exc) from None
                raise
        distributed.finish(net, method)
        if not processes.main:
            return run.model
        best = validation.best
        if best is not None and best["epoch"] != epochs:  # the last epoch is not the one kept: save it too
            report = _post_train(loop, run, data, data_split, net, method, device, progress, console)
            save_model(run.last, _record(config, run, source, split, export(net), method, device, epochs, steps, seconds,
                                         report, processes=processes.world))
            net.load_state_dict(best["network"])
            method.load_state_dict(best["method"])
        report = _post_train(loop, run, data, data_split, net, method, device, progress, console)
    elif not processes.main:  # closed form: rank 0 fits it alone
        return run.model
    else:
        started = time.perf_counter()
        features = _outputs(net, data, data_split.train, device, loop["workers"], progress, console, "Features")
        method.fit(features, data.labels[data_split.train], config["seed"])
        epochs, steps, seconds, report = 0, 0, time.perf_counter() - started, {}
    save_model(run.model, _record(config, run, source, split, export(net), method, device, epochs, steps, seconds, report,
                                  None if validation.best is None else
                                  {k: validation.best[k] for k in ("epoch", "val_map")}, processes.world))
    return run.model


def _post_train(config: dict[str, Any], run: Run, source: Source, split: Split, net: HashNetwork, method: Method,
                device: torch.device, progress: bool, console: Console | None) -> dict[str, Any]:
    """BatchNorm recalibration of the weights to save, then the method's post-training step (if any)."""
    _recalibrate_batchnorm(net, source, split.train, device, config["workers"])
    if type(method).post_train is Method.post_train:
        return {}
    h = _outputs(net, source, split.train, device, config["workers"], progress, console, "Outputs for post-training")
    started = time.perf_counter()
    report = plain(method.post_train(h, source.labels[split.train], config["seed"], progress=progress))
    report["seconds"] = round(time.perf_counter() - started, 3)
    run.log({"post_train": report})
    return report


def _record(config: dict[str, Any], run: Run, source: Source, split: Split, net: HashNetwork, method: Method,
            device: torch.device, epochs: int, steps: int, seconds: float, report: dict[str, Any],
            selected: dict[str, Any] | None = None, processes: int = 1) -> dict[str, Any]:
    """The model file's contents (see ``dhash.learn.run``)."""
    return {
        "dhash_version": __version__,
        "method": config["method"], "params": config["params"], "method_state": _cpu(method.state_dict()),
        "bits": config["bits"], "num_classes": source.num_classes, "classes": list(source.classes),
        "backbone": {"name": config["backbone"], "options": config["backbone_options"], "pretrained": config["pretrained"]},
        "input_spec": dataclasses.asdict(net.input_spec),
        "network": _cpu(net.state_dict()),
        "data": {
            "spec": config["data"], "data_dir": config["data_dir"], "name": source.name, "kind": source.kind,
            "path": str(Path(config["data"]).resolve()) if source.kind != "images" else None,
            "size": len(source), "fingerprint": source.fingerprint(),
        },
        "split": {"file": str(run.split.resolve()), "protocol": split.protocol, "seed": split.seed,
                  "train": split.train, "query": split.query, "database": split.database,
                  "validation": split.validation},
        "config": config,
        "training": {"epochs": epochs, "steps": steps, "seconds": round(seconds, 3), "device": str(device),
                     "precision": str(resolve_precision(config["precision"], device) or torch.float32).removeprefix("torch."),
                     "post_train": report, "selected": selected, "processes": processes},
    }


def _gradient_training(config: dict[str, Any], run: Run, source: Source, split: Split, net: HashNetwork,
                       method: Method, device: torch.device, resume: bool, bar: Any,
                       validation: _Validation, processes: Processes) -> tuple[int, int, float]:
    """The epochs of gradient training (from the last checkpoint with ``resume``), validated as the
    module docstring says; return (epochs done, steps, seconds)."""
    epochs = config["epochs"]
    batch_size = distributed.local_batch(min(config["batch_size"], len(split.train)), processes)
    generator = torch.Generator()
    dataset = ImageDataset(source, split.train, build_transform(net.input_spec, train=True))
    loader = DataLoader(
        dataset, batch_size=batch_size, sampler=distributed.ShardSampler(len(split.train), batch_size, processes, generator),
        drop_last=True, num_workers=config["workers"], generator=generator, worker_init_fn=_seed_worker,
        pin_memory=device.type == "cuda",
    )
    steps_per_epoch = len(loader)
    position = torch.full((len(source),), -1, dtype=torch.int64)  # source index -> position in split.train
    position[torch.from_numpy(split.train)] = torch.arange(len(split.train))
    method.begin_training(torch.from_numpy(source.labels[split.train]).float().to(device))
    model = distributed.prepare(net, method, processes, device)
    optimizer = _optimizer(config, net, method)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_factor(config, steps_per_epoch))
    autocast = resolve_precision(config["precision"], device)
    scaler = torch.amp.GradScaler(device.type, enabled=autocast == torch.float16)
    first, step, seconds = 0, 0, 0.0
    checkpoint = run.load_checkpoint() if resume else None
    if checkpoint is not None:
        try:
            net.load_state_dict(checkpoint["network"])
            method.load_state_dict(checkpoint["method"])
            optimizer.load_state_dict(checkpoint["optimizer"])
            scheduler.load_state_dict(checkpoint["scheduler"])
            scaler.load_state_dict(checkpoint["scaler"])
        except (RuntimeError, TypeError, KeyError, ValueError, AttributeError, IndexError) as exc:
            raise DHashError(f"{run.checkpoint}: does not fit this run ({' '.join(str(exc).split())[:200]})") from None
        first, step, seconds = checkpoint["epoch"], checkpoint["step"], checkpoint["seconds"]
        validation.best, validation.since_best = checkpoint.get("best"), checkpoint.get("since_best", 0)
    if resume and processes.main:
        run.trim_metrics(first)

    done = first
    try:
        for epoch in range(first, epochs):
            seed = _epoch_seed(config["seed"], epoch)
            _seed_all(seed)
            generator.manual_seed(seed)
            dataset.augment_seed = seed
            net.train()
            method.train()
            lr = optimizer.param_groups[0]["lr"]
            sums: dict[str, float] = defaultdict(float)
            counts: dict[str, int] = defaultdict(int)
            images = 0
            started = time.perf_counter()
            task = bar.add_task(f"Epoch {epoch + 1}/{epochs}", total=steps_per_epoch, loss=float("nan"), ips=0.0)
            for x, y, i in loader:
                x, y = _to_device(x, device), y.to(device, non_blocking=True)
                items = position[i].to(device)
                with torch.autocast(device.type, dtype=autocast, enabled=autocast is not None):
                    out = model(x)
                loss, parts = method.loss(_float(out), y, TrainState(epoch, epochs, step, steps_per_epoch, items))
                loss = distributed.use_every_output(loss, out, processes)
                value = loss.detach().item()
                if not math.isfinite(value):
                    raise DHashError(
                        f"{config['method']}: the loss became {value} at epoch {epoch + 1}, step {step} "
                        f"(try a smaller --lr); the last good checkpoint is {run.checkpoint}"
                    )
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                distributed.average_method_gradients(method, processes)
                scaler.step(optimizer)
                scaler.update()
                scheduler.step()
                step += 1
                images += len(x) * processes.world
                for name, part in {"loss": value, **{f"loss_{k}": _number(v) for k, v in parts.items()}}.items():
                    sums[name] += part
                    counts[name] += 1
                bar.update(task, advance=1, loss=sums["loss"] / counts["loss"],
                           ips=images / max(time.perf_counter() - started, 1e-9))
            elapsed = time.perf_counter() - started
            seconds += elapsed
            scores = {}
            if validation.active and ((epoch + 1) % config["val_every"] == 0 or epoch + 1 == epochs):
                scores["val_map"] = processes.broadcast(
                    validation.score(net, method, device, config["workers"]) if processes.main else None)
                validation.update(epoch + 1, scores["val_map"], net, method)
            if processes.main:
                run.log({"epoch": epoch + 1, "step": step, **{k: sums[k] / counts[k] for k in sums},
                         "lr": lr, "seconds": round(elapsed, 3), "images_per_s": round(images / elapsed, 1), **scores,
                         **({"processes": processes.world} if processes.world > 1 else {})})
                run.save_checkpoint({
                    "epoch": epoch + 1, "step": step, "seconds": seconds,
                    "network": net.state_dict(), "method": method.state_dict(), "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(),
                    "best": validation.best, "since_best": validation.since_best,
                })
            done = epoch + 1
            if config["patience"] is not None and validation.since_best >= config["patience"]:
                if processes.main:
                    run.log({"early_stop": done, "best_epoch": validation.best["epoch"]})
                break
    except KeyboardInterrupt:
        if done > 0:
            where = f"the last checkpoint, {run.checkpoint}, holds epoch {done} of {epochs}"
        else:
            where = "no epoch had finished, so there is no checkpoint yet"
        raise TrainingInterrupted(
            f"interrupted during epoch {done + 1}; {where}; continue with: dhash train -o {run.folder} --resume"
        ) from None
    return done, step, seconds
