"""Backbone modes: ``frozen`` (cached backbone features, only the heads train) and ``finetune``.

``frozen``: the backbone's features of every training and validation image are computed once (batched,
images decoded in ``DataLoader`` workers, a progress bar) and kept in the feature cache
(``dhash.learn.data.feature_cache``: ``features.h5`` in the run folder, or the ``feature_cache``
setting), from where later epochs, ``--resume``, later runs and ``dhash encode`` read them. Training then
runs on the features: the network it sees is the hash head (and classifier head) over ``CachedViews``,
which draws one of each image's cached views per step (``cached_views = "flip"``: the image or its
mirror, the head's augmentation; not the default: it doubles the extraction and gained nothing on
Fashion-MNIST, see the README), takes the plain view to evaluate and standardises the features with
the training set's statistics (dhash's choice); on the CPU with one thread. The trained heads, the
standardisation folded in, are written into the full network, so ``model.pt`` holds the full network,
backbone unchanged, and encodes new images.
The backbone runs in evaluation mode (BatchNorm with its pretrained statistics) and is never updated.

``finetune`` (the whole network trains): on image files, the training and validation images are decoded
and resized once and kept in memory as uint8 when they fit (``dhash.learn.data.preload``).

Default (``backbone_mode`` unset): ``frozen`` on the CPU for a pretrained backbone (or ``--weights``) on
image folders and list files, ``finetune`` otherwise (CUDA, in-memory data sets, networks trained from
scratch); a run resumed from before this setting existed is ``finetune``.
"""
from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from rich.progress import Progress
from torch import nn

from ..errors import DHashError
from .data import ImageDataset, Source, Split, build_transform
from .data.feature_cache import VIEWS, FeatureCache, backbone_digest, item_keys
from .data.preload import fits_in_memory, preload
from .methods import NetOutput
from .models import HashNetwork
from .models.features import FEATURE_SPEC
from .run import Run
from .runtime import forward_batches, make_progress

CACHE_NAME = "features.h5"
VIEW_SETS = {"none": ("plain",), "flip": VIEWS}  # the cached_views setting → the views cached per training image


def resolve_backbone_mode(config: dict[str, Any], source: Source, device: torch.device, resume: bool,
                          processes: int = 1) -> str:
    """The ``backbone_mode`` a run uses (see the module docstring for the default; ``finetune`` for a
    run of several processes, where frozen training is refused: its head trains in seconds on one)."""
    mode = config["backbone_mode"]
    if mode == "frozen" and source.kind == "features":
        raise DHashError(f"{config['data']}: --backbone-mode frozen: a feature file already trains only the heads")
    if mode == "frozen" and processes > 1:
        raise DHashError("--backbone-mode frozen trains on one process; run it without torchrun/--processes")
    if mode is not None:
        return mode
    if resume or processes > 1:
        return "finetune"
    pretrained = config["pretrained"] or config["weights"] is not None
    return "frozen" if device.type == "cpu" and pretrained and source.kind == "paths" else "finetune"


def cache_file(config: dict[str, Any], folder: str | Path) -> Path:
    """Where a run's feature cache lives: the ``feature_cache`` setting, else ``features.h5`` in ``folder``."""
    return Path(config.get("feature_cache") or Path(folder) / CACHE_NAME)


class CachedViews(nn.Module):
    """The backbone of head training: B × V × D cached views → B × D, a random view per item when
    training, the plain one (view 0) when evaluating; B × D features pass through. Features are
    standardised with the training set's ``mean`` and ``std`` (see ``standardise``)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.input_spec = FEATURE_SPEC
        self.out_features = dim
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 3:
            pick = torch.randint(x.shape[1], (len(x),)) if self.training else torch.zeros(len(x), dtype=torch.long)
            x = x[torch.arange(len(x)), pick.to(x.device)]
        return (x.float() - self.mean) / self.std

    def standardise(self, features: np.ndarray) -> None:
        """Centre and scale by these (N × D) features' statistics, as a linear probe does: the heads of raw
        pooled features, all positive and strongly correlated, trained far worse (measured: val mAP 0.51 vs
        0.71, Fashion-MNIST PNGs, 8 epochs). Channels of (almost) no variance keep scale 1."""
        mean, std = torch.from_numpy(features.mean(0)), torch.from_numpy(features.std(0))
        self.mean.copy_(mean)
        self.std.copy_(torch.where(std > 1e-3 * std.median().clamp_min(1e-12), std, torch.ones_like(std)))


def head_network(net: HashNetwork) -> HashNetwork:
    """A network over cached features with heads like ``net``'s (copies; ``export_heads`` writes them back)."""
    head = HashNetwork(CachedViews(net.backbone.out_features), net.bits)
    head.hash_head, head.classifier = copy.deepcopy(net.hash_head), copy.deepcopy(net.classifier)
    return head


def export_heads(head: HashNetwork, net: HashNetwork) -> HashNetwork:
    """``net`` with ``head``'s trained heads, the feature standardisation folded into them:
    W((x − μ)/σ) + b = (W/σ)x + (b − (W/σ)μ). Returns ``net``, whose backbone is untouched."""
    views = head.backbone
    with torch.no_grad():
        for trained, target in ((head.hash_head, net.hash_head), (head.classifier, net.classifier)):
            if trained is not None:
                weight = trained.weight / views.std
                target.weight.copy_(weight)
                target.bias.copy_(trained.bias - weight @ views.mean)
    return net


class _Views(torch.utils.data.Dataset):
    """Items of an ``ImageDataset`` as a V × C × S × S stack: the image, and its mirror when ``flip``."""

    def __init__(self, dataset: ImageDataset, flip: bool) -> None:
        self.dataset, self.flip = dataset, flip

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, k: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        x, y, i = self.dataset[k]
        return torch.stack([x, x.flip(-1)]) if self.flip else x[None], y, i


class _PerView(nn.Module):
    """Runs a backbone on B × V × C × S × S view stacks → B × V × D features."""

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.flatten(0, 1).contiguous(memory_format=torch.channels_last)
        return self.backbone(flat).float().unflatten(0, x.shape[:2])


def backbone_features(net: HashNetwork, source: Source, indices: np.ndarray, views: tuple[str, ...], cache: FeatureCache,
                      device: torch.device, batch_size: int = 64, workers: int = 0,
                      failures: list[tuple[int, str]] | None = None, progress: Progress | None = None,
                      description: str = "Backbone features") -> tuple[np.ndarray, np.ndarray, int]:
    """Features of ``source[indices]`` (N × V × D float32), read from ``cache`` or computed and stored there.

    Returns the positions (into ``indices``) of the items kept, their features and how many were
    computed. With a ``failures`` list, unreadable images are skipped and listed as (position, reason),
    as ``forward_batches`` does; without one, the first raises.
    """
    keys = item_keys(source, indices)
    group = backbone_digest(net.backbone, net.input_spec)
    out = np.zeros((len(indices), len(views), net.backbone.out_features), dtype=np.float32)
    found = np.ones(len(indices), dtype=bool)
    for v, view in enumerate(views):
        rows, hit = cache.lookup(group, view, keys)
        if rows is not None and rows.shape[1] == out.shape[2]:
            out[hit, v] = rows[hit]
        else:
            hit = np.zeros(len(indices), dtype=bool)
        found &= hit
    missing = np.flatnonzero(~found)
    failed: list[tuple[int, str]] = []
    if len(missing):
        dataset = _Views(ImageDataset(source, indices[missing], build_transform(net.input_spec, train=False)),
                         flip="flip" in views)
        for positions, features in forward_batches(_PerView(net.backbone).train(net.backbone.training), dataset, device, batch_size,
                                                   workers, None if failures is None else failed, progress, description):
            out[missing[positions.numpy()]] = features.cpu().numpy()
        failed = [(int(missing[p]), reason) for p, reason in failed]
        computed = np.setdiff1d(missing, [p for p, _ in failed])
        if len(computed):
            attrs = {"backbone": type(net.backbone).__name__, "input_size": net.input_spec.size}
            try:
                cache.store(group, attrs, {view: ([keys[p] for p in computed], out[computed, v])
                                           for v, view in enumerate(views)})
            except OSError as exc:
                raise DHashError(f"{cache.path}: cannot write the feature cache ({exc.strerror or exc})") from None
    if failures is not None:
        failures.extend(failed)
    kept = np.setdiff1d(np.arange(len(indices)), [p for p, _ in failed])
    return kept, out[kept], len(missing) - len(failed)


def model_cache(record: dict[str, Any], path: str | Path) -> FeatureCache | None:
    """The feature cache of a model trained with a frozen backbone (None for other models)."""
    config = record.get("config", {})
    return FeatureCache(cache_file(config, Path(path).parent)) if config.get("backbone_mode") == "frozen" else None


def cached_forward(net: HashNetwork, source: Source, indices: np.ndarray, cache: FeatureCache, device: torch.device,
                   batch_size: int = 256, workers: int = 0, failures: list[tuple[int, str]] | None = None,
                   progress: Progress | None = None, description: str = "") -> Iterator[tuple[torch.Tensor, NetOutput]]:
    """``runtime.forward_batches`` for a frozen-backbone network: the backbone's features come from ``cache``
    (those missing are computed and stored), then the heads run on them; yields ``(positions, NetOutput)``."""
    kept, features, _ = backbone_features(net, source, indices, ("plain",), cache, device, batch_size, workers,
                                          failures, progress, description)
    head = HashNetwork(CachedViews(net.backbone.out_features), net.bits).to(device).eval()
    head.hash_head, head.classifier = net.hash_head, net.classifier  # the model's own heads, on raw features
    with torch.inference_mode():
        for start in range(0, len(kept), batch_size):
            x = torch.from_numpy(features[start : start + batch_size, 0]).to(device)
            yield torch.from_numpy(kept[start : start + batch_size]), head(x)


def _same(net: HashNetwork) -> HashNetwork:
    return net


def prepare_training(config: dict[str, Any], run: Run, source: Source, split: Split, net: HashNetwork,
                     device: torch.device, progress: bool = False, console: Console | None = None, processes: int = 1,
                     ) -> tuple[HashNetwork, Source, Split, dict[str, Any], Callable[[HashNetwork], HashNetwork]]:
    """What the training loop runs on: (network, data, split, config), and ``export``, which turns the
    trained network into the full one that ``model.pt`` saves.

    ``frozen``: the head network over cached features of the training and validation items; the data
    and split hold only those items (renumbered) and data loading runs in-process; ``export`` copies the
    heads into ``net``. ``finetune`` on image files that fit in memory: ``net`` itself over preloaded
    images. Otherwise (and with several ``processes``) everything as given.
    """
    frozen = config["backbone_mode"] == "frozen"
    if processes > 1 or (source.kind != "paths" and not frozen):
        return net, source, split, config, _same
    used = np.union1d(split.train, split.validation)
    if not frozen and not fits_in_memory(len(used), net.input_spec):
        return net, source, split, config, _same
    started = time.perf_counter()
    with make_progress(progress, console) as bar:
        if frozen:
            cache = FeatureCache(cache_file(config, run.folder))
            _, features, computed = backbone_features(net, source, used, VIEW_SETS[config["cached_views"]], cache,
                                                      device, workers=config["workers"], progress=bar)
            data = Source(name=source.name, features=features, labels=source.labels[used], classes=list(source.classes),
                          ids=[source.ids[i] for i in used])
            run.log({"features": {"items": len(used), "computed": computed, "cache": str(cache.path),
                                  "seconds": round(time.perf_counter() - started, 3)}})
            full, net = net, head_network(net).to(device)
            if net.hash_head is not None:  # closed-form methods (no head) code the features themselves
                net.backbone.standardise(features[np.searchsorted(used, split.train), 0])
            if device.type == "cpu":  # dhash's choice: the head's small matrices gain nothing from more threads,
                torch.set_num_threads(1)  # whose synchronisation made its epochs 10-20x slower on a shared 2-core CPU
        else:
            data = preload(source, used, net.input_spec, config["workers"], bar)
            run.log({"preloaded": {"items": len(used), "seconds": round(time.perf_counter() - started, 3)}})
    renumbered = Split(train=np.searchsorted(used, split.train), query=np.zeros(0, np.int64),
                       database=np.zeros(0, np.int64), protocol=split.protocol, seed=split.seed, size=len(used),
                       validation=np.searchsorted(used, split.validation))
    export = (lambda head: export_heads(head, full)) if frozen else _same
    return net, data, renumbered, {**config, "workers": 0}, export


__all__ = ["CACHE_NAME", "CachedViews", "VIEW_SETS", "backbone_features", "cache_file", "cached_forward",
           "export_heads", "head_network", "model_cache", "prepare_training", "resolve_backbone_mode"]
