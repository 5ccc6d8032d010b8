"""Training settings: the global defaults, the TOML config file, and the effective config of a run.

Every ``dhash train`` option is a key here (``--batch-size`` ↔ ``batch_size``; dashes and
underscores are interchangeable in config files; method hyper-parameters go in a ``[params]``
table, backbone options in ``[backbone_options]``). Precedence, highest first: command-line options,
the config file (``--config FILE.toml``), the method's ``train_defaults``, then ``DEFAULTS``.
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
  - backbone options ``in_channels`` / ``size`` (small networks): from the images;
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
from .runtime import default_workers

DEFAULTS: dict[str, Any] = {
    "data": None,  # required: fashion-mnist | mnist | cifar10 | FOLDER | LIST.txt | FEATURES.h5
    "data_dir": None,
    "method": None,  # required
    "bits": 32,
    "protocol": None,  # full | per-class | random; None: from the data
    "queries_per_class": 100,
    "train_per_class": 500,
    "limit": None,  # train on a seeded random subset of this many training items
    "backbone": None,  # None: from the data and the method
    "backbone_options": {},
    "pretrained": None,
    "weights": None,  # state-dict file for the backbone
    "cbam": None,  # False: cbam-cnn without its CBAM modules (--no-cbam)
    "no_pretrain": False,  # expo: no classification pre-training (pretrain_epochs = 0)
    "params": {},  # method hyper-parameters
    "epochs": 28,  # Fashion-MNIST, small-cnn: ≈ 9 minutes on 2 cores with bfloat16, the comparison's budget
    "batch_size": 128,
    "optimizer": "adam",  # adam | sgd
    "lr": 1e-3,
    "momentum": 0.9,  # SGD only
    "weight_decay": 0.0,
    "lr_decay": "cosine",  # cosine (per step, to 0) | step | none
    "lr_step": None,  # step decay: epochs between decays (None: a third of the run)
    "lr_gamma": 0.1,  # step decay factor
    "head_lr_mult": 10.0,  # learning-rate multiplier of the heads on a pretrained backbone
    "device": "auto",  # auto | cpu | cuda | cuda:N
    "precision": "auto",  # auto | mixed | float32 (see runtime.resolve_precision)
    "seed": 0,
    "workers": None,
    "threads": None,  # CPU threads (None: all CPUs, or OMP_NUM_THREADS)
}

TRAIN_DEFAULT_KEYS = ("optimizer", "lr", "weight_decay", "momentum", "batch_size", "epochs",
                      "lr_decay", "lr_step", "lr_gamma", "head_lr_mult")

# keys that may differ when a run is resumed (where and how fast it runs, not what it computes)
RUNTIME_KEYS = ("device", "precision", "workers", "threads", "data_dir")

_TYPES: dict[str, type | tuple[type, ...]] = {
    "data": str, "data_dir": str, "method": str, "bits": int, "protocol": str,
    "queries_per_class": int, "train_per_class": int, "limit": int, "backbone": str,
    "backbone_options": dict, "pretrained": bool, "weights": str, "cbam": bool, "no_pretrain": bool,
    "params": dict, "epochs": int, "batch_size": int, "optimizer": str, "lr": (int, float),
    "momentum": (int, float), "weight_decay": (int, float), "lr_decay": str, "lr_step": int,
    "lr_gamma": (int, float), "head_lr_mult": (int, float), "device": str, "precision": str, "seed": int, "workers": int,
    "threads": int,
}
_CHOICES = {
    "protocol": ("full", "per-class", "random"),
    "optimizer": ("adam", "sgd"),
    "lr_decay": ("cosine", "step", "none"),
    "precision": ("auto", "mixed", "float32"),
}
_MINIMUM = {"bits": 1, "queries_per_class": 1, "train_per_class": 1, "limit": 2, "epochs": 1,
            "batch_size": 2, "lr_step": 1, "workers": 0, "threads": 1, "seed": 0}
_POSITIVE = ("lr", "lr_gamma", "head_lr_mult")


def check_settings(values: dict[str, Any], where: str) -> dict[str, Any]:
    """Normalise keys (``-`` → ``_``) and check names, types and ranges; ``where`` names the origin in errors."""
    out: dict[str, Any] = {}
    for raw_key, value in values.items():
        key = raw_key.replace("-", "_")
        if key not in DEFAULTS:
            raise DHashError(f"{where}: unknown setting '{raw_key}' (known: {', '.join(DEFAULTS)})")
        if value is None:
            out[key] = None
            continue
        typ = _TYPES[key]
        if isinstance(value, bool) and typ is not bool or not isinstance(value, typ):
            names = typ.__name__ if isinstance(typ, type) else " or ".join(t.__name__ for t in typ)
            raise DHashError(f"{where}: '{raw_key}' must be a {names}, got {value!r}")
        if key in ("params", "backbone_options"):
            value = {str(k).replace("-", "_"): v for k, v in value.items()}
        if key in _CHOICES and value not in _CHOICES[key]:
            raise DHashError(f"{where}: '{raw_key}' must be one of {', '.join(_CHOICES[key])}, got {value!r}")
        if key in _MINIMUM and value < _MINIMUM[key]:
            raise DHashError(f"{where}: '{raw_key}' must be at least {_MINIMUM[key]}, got {value}")
        if key in _POSITIVE and value <= 0 or key in ("weight_decay", "momentum") and value < 0:
            raise DHashError(f"{where}: '{raw_key}' must be {'positive' if key in _POSITIVE else 'non-negative'}, got {value}")
        if key == "bits" and value > 1024:
            raise DHashError(f"{where}: 'bits' must be at most 1024, got {value}")
        if key == "device" and not (value in ("auto", "cpu", "cuda") or value.startswith("cuda:")):
            raise DHashError(f"{where}: 'device' must be auto, cpu, cuda or cuda:N, got {value!r}")
        out[key] = float(value) if typ == (int, float) else value
    return out


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
    for key, value in hints.items():
        if key in known:
            options.setdefault(key, value)
    if config["cbam"] is not None:
        if "cbam" not in known:
            raise DHashError(f"--{'' if config['cbam'] else 'no-'}cbam: backbone '{config['backbone']}' has no CBAM modules (use --backbone cbam-cnn)")
        options["cbam"] = config["cbam"]
    config["backbone_options"] = options
    if config["workers"] is None:
        config["workers"] = default_workers(source)
    return config
