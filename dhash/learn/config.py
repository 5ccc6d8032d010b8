"""Resolving training settings: the TOML config file and the effective config of a run.

The settings themselves (defaults, types, checks, help) are declared once in ``dhash.learn.settings``.
Every ``dhash train`` option is a key there (``--batch-size`` ↔ ``batch_size``; dashes and
underscores are interchangeable in config files; method hyper-parameters go in a ``[params]``
table, backbone options in ``[backbone_options]``). Precedence, highest first: command-line options,
the config file (``--config FILE.toml``), the method's ``train_defaults``, then ``settings.DEFAULTS``.
Paths in a config file are relative to the working directory, as on the command line.

Keys a method's ``train_defaults`` may set (the trainer honours exactly these): ``TRAIN_DEFAULT_KEYS``.

Settings left ``None`` are chosen from the data by ``resolve_for_data``:
  - protocol: ``full`` when the data has its own train/test split (IDX, CIFAR), else ``per-class``
    for single-label and ``random`` for multi-label data;
  - backbone: the method's ``default_backbone`` class attribute if it has one (HEGH: ``cbam-cnn``),
    else ``small-cnn`` for in-memory data sets of images up to 32 px (MNIST, Fashion-MNIST, CIFAR-10)
    and ImageNet-pretrained ``efficientnet-lite0`` for image folders and list files; closed-form
    methods (LSH, ITQ) get ``pixels`` instead of an untrained ``small-cnn``;
  - pretrained: true only when the backbone was chosen by that rule and is ``efficientnet-lite0``;
  - backbone options ``in_channels`` / ``size`` (small networks): from the images; ``input_size``
    (efficientnet-lite0): from the images' typical shorter side (``input_size_for``: small images are
    not upscaled to 224 px);
  - workers: 0 for in-memory data, ``min(8, CPUs − 1)`` (at least 1) for image files.
"""
from __future__ import annotations

import copy
import dataclasses
import os
import tomllib
from pathlib import Path
from typing import Any

from ..errors import DHashError
from .data.imagefiles import typical_side
from .runtime import default_workers
from .settings import DEFAULTS, TRAIN_DEFAULT_KEYS, check_settings

# input size of efficientnet-lite0 (see input_size_for): chosen from the mAP measured against input size
# (README, "Your own data": Fashion-MNIST PNGs, frozen features)
UPSCALE, MIN_INPUT, MAX_INPUT = 4, 96, 224


def read_config_file(path: str | os.PathLike) -> tuple[dict[str, Any], str | None]:
    """Read and check a TOML config file (top-level keys = option names, plus ``[params]``).

    Returns the settings and the ``output`` run folder, if the file names one.
    """
    p = Path(path)
    try:
        with p.open("rb") as f:
            values = tomllib.load(f)
    except FileNotFoundError:
        raise DHashError(f"{p}: config file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise DHashError(f"{p}: not a valid TOML file ({exc})") from None
    except OSError as exc:
        raise DHashError(f"{p}: cannot read config file ({exc.strerror})") from None
    output = values.pop("output", None)  # where the run goes, not part of its config
    if output is not None and not isinstance(output, str):
        raise DHashError(f"{p}: 'output' must be a string, got {output!r}")
    return check_settings(values, str(p)), output


def resolve(cli: dict[str, Any], file: dict[str, Any] | None = None) -> dict[str, Any]:
    """The effective config: ``cli`` > ``file`` > the method's ``train_defaults`` > ``DEFAULTS``.

    ``cli`` and ``file`` hold only the settings given (checked by ``check_settings``). ``params``
    tables merge key by key; the result's ``params`` holds every hyper-parameter of the method.
    """
    from .methods import get_method, parse_params

    file = file or {}
    given = {**file, **cli}
    for key in ("data", "method"):
        if not given.get(key):
            raise DHashError(f"missing setting '{key}': give --{key} or set it in the config file")
    method = get_method(given["method"])
    bad = set(method.train_defaults) - set(TRAIN_DEFAULT_KEYS)
    if bad:
        raise DHashError(f"method '{method.name}': unsupported train_defaults {sorted(bad)} (supported: {', '.join(TRAIN_DEFAULT_KEYS)})")
    config = {**copy.deepcopy(DEFAULTS), **check_settings(method.train_defaults, f"method '{method.name}' train_defaults")}
    config.update(given)
    for key in ("params", "backbone_options"):
        config[key] = {**file.get(key, {}), **cli.get(key, {})}
    if config["no_pretrain"]:
        if "pretrain_epochs" not in {f.name for f in dataclasses.fields(method.params_cls)}:
            raise DHashError(f"--no-pretrain: method '{method.name}' has no pre-training stage")
        config["params"]["pretrain_epochs"] = 0
    config["params"] = dataclasses.asdict(parse_params(method, config["params"]))
    return config


def input_size_for(side: int) -> int:
    """The input size of a resizable backbone (efficientnet-lite0) for images whose shorter side is ``side`` px:
    ``UPSCALE`` times the side, rounded up to a multiple of 32, between ``MIN_INPUT`` and ``MAX_INPUT``."""
    return min(MAX_INPUT, max(MIN_INPUT, -(-side * UPSCALE // 32) * 32))


def resolve_for_data(config: dict[str, Any], source: Any, method: type) -> dict[str, Any]:
    """Fill the settings left to the data (protocol, backbone, pretrained, backbone options, workers)."""
    from .models import backbone_options

    config = copy.deepcopy(config)
    if source.kind == "features":
        if config["backbone"] not in (None, "features"):
            raise DHashError(f"{config['data']}: a feature file trains only the heads; --backbone must be 'features'")
        config["backbone"], config["pretrained"] = "features", False
        config["backbone_options"] = {**config["backbone_options"], "dim": int(source.features.shape[1])}
    small = source.kind == "images" and max(source.images.shape[1:3]) <= 32
    if config["protocol"] is None:
        if source.subset is not None:
            config["protocol"] = "full"
        else:
            config["protocol"] = "random" if source.multi_label else "per-class"
    if config["backbone"] is None:
        chosen = getattr(method, "default_backbone", None)
        if chosen is None:
            chosen = ("small-cnn" if method.trainable else "pixels") if small else "efficientnet-lite0"
        config["backbone"] = chosen
        if config["pretrained"] is None:
            config["pretrained"] = chosen == "efficientnet-lite0"
    if config["pretrained"] is None:
        config["pretrained"] = False
    known = backbone_options(config["backbone"])
    options = dict(config["backbone_options"])
    if source.kind == "images":
        hints = {"in_channels": 1 if source.images.ndim == 3 else 3}
        if source.images.shape[1] == source.images.shape[2]:
            hints["size"] = int(source.images.shape[1])
    else:
        hints = {"in_channels": 3}
    if source.kind != "features":
        side = min(source.images.shape[1:3]) if source.kind == "images" else typical_side(source.paths)
        hints["input_size"] = None if side is None else input_size_for(side)
    for key, value in hints.items():
        if key in known and value is not None:
            options.setdefault(key, value)
    if config["cbam"] is not None:
        if "cbam" not in known:
            raise DHashError(f"--{'' if config['cbam'] else 'no-'}cbam: backbone '{config['backbone']}' has no CBAM modules (use --backbone cbam-cnn)")
        options["cbam"] = config["cbam"]
    config["backbone_options"] = options
    if config["workers"] is None:
        config["workers"] = default_workers(source)
    return config
