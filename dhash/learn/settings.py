"""The training settings schema: every ``dhash train`` setting with its default, type, help and checks.

``Settings`` is the one place a setting is declared. From its fields come ``DEFAULTS`` (and so the
keys and order of a run's ``config.json``), ``check_settings`` (the checks applied to the command
line, the TOML config file, a method's ``train_defaults`` and a resumed run's saved config), and
the ``dhash train`` options (``dhash.cli.train`` builds one Click option per field with ``option``
set; the others are settings for the config file only).

Adding a setting is a one-place change: add a field below with ``setting(...)`` (default, help and
its checks); the type is the field's annotation (``int | None``: an int or unset). It then appears
in ``config.json``, in the TOML reader and, unless ``option=False``, as ``--the-name``.
``method_default=True`` lets a method's ``train_defaults`` set it; ``runtime=True`` lets it change
when a run is resumed (where and how fast it runs, not what it computes).
"""
from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import DHashError
from .data.splits import PROTOCOLS


def setting(default: Any, help: str, *, choices: tuple[str, ...] = (), minimum: int | None = None,
            check: Callable[[Any], str | None] | None = None, option: bool = True, show_default: bool = False,
            method_default: bool = False, runtime: bool = False, cli: dict[str, Any] | None = None) -> Any:
    """A ``Settings`` field.

    ``choices``: the allowed values; ``minimum``: the smallest allowed number; ``check``: returns what
    is wrong with a value, or None; ``option``: a ``dhash train`` option (else config file only);
    ``show_default``: the option's help ends with the default; ``cli``: how the option differs from
    ``--the-name VALUE``: ``decls`` (its names), ``type`` (``"file"``, ``"dir"`` or a function listing
    the allowed names) and other ``click.option`` arguments.
    """
    meta = {"help": help, "choices": choices, "minimum": minimum, "check": check, "option": option,
            "show_default": show_default, "method_default": method_default, "runtime": runtime, "cli": cli or {}}
    if isinstance(default, dict):
        return dataclasses.field(default_factory=lambda: dict(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def _positive(value: float) -> str | None:
    return "positive" if value <= 0 else None


def _non_negative(value: float) -> str | None:
    return "non-negative" if value < 0 else None


def _fraction_below_half(value: float) -> str | None:
    return "in [0, 0.5)" if not 0 <= value < 0.5 else None


def _at_most_1024(value: int) -> str | None:
    return "at most 1024" if value > 1024 else None


def _device(value: str) -> str | None:
    return None if value in ("auto", "cpu", "cuda") or value.startswith("cuda:") else "auto, cpu, cuda or cuda:N"


def _method_names() -> list[str]:
    from .methods import method_names

    return method_names()


def _backbone_names() -> list[str]:
    from .models import backbone_names

    return backbone_names()


@dataclass
class Settings:
    """The settings of one training run (``None``: unset, or chosen from the data by ``config.resolve_for_data``)."""

    data: str | None = setting(None, "fashion-mnist | mnist | cifar10 | image FOLDER | LIST.txt | FEATURES.h5")
    data_dir: str | None = setting(None, "Where fashion-mnist / mnist / cifar10 are looked for first.", runtime=True,
                                   cli={"type": "dir"})
    method: str | None = setting(None, "Hashing method (see --list-methods).", cli={"type": _method_names})
    bits: int = setting(32, "Code length", minimum=1, check=_at_most_1024, show_default=True)
    protocol: str | None = setting(
        None, "Split: full (the data set's own train/test), per-class, random, unseen (train on 75 % of the classes, "
        "search the others)  [default: full where the data has a split]", choices=PROTOCOLS)
    queries_per_class: int = setting(100, "per-class/random: queries per class", minimum=1, show_default=True)
    train_per_class: int = setting(500, "per-class/random: training items per class", minimum=1, show_default=True)
    limit: int | None = setting(None, "Train on a random subset of this many training items (quick runs).", minimum=2)
    backbone: str | None = setting(None, "Network before the hash layer  [default: from the data]",
                                   cli={"type": _backbone_names})
    backbone_options: dict[str, Any] = setting({}, "backbone options (a [backbone_options] table)", option=False)
    pretrained: bool | None = setting(None, "Start from ImageNet weights.", cli={"decls": ("--pretrained/--no-pretrained",)})
    weights: str | None = setting(None, "Backbone weights (state-dict file) to start from.", cli={"type": "file"})
    backbone_mode: str | None = setting(
        None, "frozen: backbone features computed once and cached, only the heads train (minutes on a CPU, "
        "a little lower mAP); finetune: the whole network trains (best mAP, slow without a GPU)  "
        "[default: frozen on the CPU for pretrained backbones on folders and list files, else finetune]",
        choices=("frozen", "finetune"))
    cached_views: str = setting("none", "frozen: views cached per training image (flip: also its mirror, "
                                "drawn at random as augmentation; twice the extraction time)", choices=("none", "flip"),
                                show_default=True)
    feature_cache: str | None = setting(None, "frozen: the feature cache file, to share it between runs  "
                                        "[default: features.h5 in the run folder]", runtime=True,
                                        cli={"type": "file"})
    cbam: bool | None = setting(None, "cbam-cnn with or without its CBAM modules (HEGH ablation).",
                                cli={"decls": ("--cbam/--no-cbam",)})
    no_pretrain: bool = setting(False, "expo: skip classification pre-training.", cli={"is_flag": True})
    params: dict[str, Any] = setting({}, "Method hyper-parameter (repeatable).", cli={"decls": ("--param", "params"), "multiple": True, "metavar": "KEY=VALUE"})
    # 28 epochs: Fashion-MNIST, small-cnn: ≈ 9 minutes on 2 cores with bfloat16, the comparison's budget
    epochs: int = setting(28, "Training epochs", minimum=1, show_default=True, method_default=True)
    batch_size: int = setting(128, "", minimum=2, show_default=True, method_default=True)
    optimizer: str = setting("adam", "", choices=("adam", "sgd"), show_default=True, method_default=True)
    lr: float = setting(1e-3, "Learning rate", check=_positive, show_default=True, method_default=True)
    momentum: float = setting(0.9, "SGD momentum", check=_non_negative, option=False, method_default=True)
    weight_decay: float = setting(0.0, "", check=_non_negative, show_default=True, method_default=True)
    lr_decay: str = setting("cosine", "", choices=("cosine", "step", "none"), show_default=True, method_default=True)
    lr_step: int | None = setting(None, "epochs between step decays; default a third of the run", minimum=1,
                                  option=False, method_default=True)
    lr_gamma: float = setting(0.1, "step decay factor", check=_positive, option=False, method_default=True)
    head_lr_mult: float = setting(10.0, "learning-rate multiplier of the heads on a pretrained backbone",
                                  check=_positive, option=False, method_default=True)
    device: str = setting("auto", "auto | cpu | cuda | cuda:N  [default: auto (CUDA when available)]", check=_device,
                          runtime=True)
    precision: str = setting(
        "auto", "Mixed precision: float16 on CUDA, bfloat16 on the CPU  [default: auto (CUDA, and CPUs with native bfloat16)]",
        choices=("auto", "mixed", "float32"), runtime=True)
    val_fraction: float = setting(
        0.1, "Fraction of the training items held out (per class, seeded) to pick the best epoch by validation mAP; "
        "0 keeps the last epoch", check=_fraction_below_half, show_default=True)
    val_every: int = setting(1, "Validation mAP every N epochs (and after the last)", minimum=1, show_default=True)
    patience: int | None = setting(None, "Stop after this many validations without a better mAP  [default: never]",
                                   minimum=1)
    seed: int = setting(0, "Seed of the split, initialisation and shuffling", minimum=0, show_default=True)
    workers: int | None = setting(None, "Data-loading processes  [default: 0 for in-memory data, more for image files]",
                                  minimum=0, runtime=True)
    threads: int | None = setting(None, "CPU threads  [default: all CPUs, or $OMP_NUM_THREADS]", minimum=1, runtime=True)


FIELDS: dict[str, dataclasses.Field] = {f.name: f for f in dataclasses.fields(Settings)}
DEFAULTS: dict[str, Any] = dataclasses.asdict(Settings())
TRAIN_DEFAULT_KEYS = tuple(k for k, f in FIELDS.items() if f.metadata["method_default"])
RUNTIME_KEYS = tuple(k for k, f in FIELDS.items() if f.metadata["runtime"])


def _value_types(annotation: Any) -> tuple[type, ...]:
    """The types a value of a field may have: its annotation without None; a float field takes ints too."""
    args = typing.get_args(annotation) if isinstance(annotation, types.UnionType) else (annotation,)
    kinds = tuple(typing.get_origin(a) or a for a in args if a is not type(None))
    return (int, float) if kinds == (float,) else kinds


TYPES: dict[str, tuple[type, ...]] = {k: _value_types(t) for k, t in typing.get_type_hints(Settings).items()}


def check_settings(values: dict[str, Any], where: str) -> dict[str, Any]:
    """Normalise keys (``-`` → ``_``) and check names, types and ranges; ``where`` names the origin in errors."""
    out: dict[str, Any] = {}
    for raw_key, value in values.items():
        key = raw_key.replace("-", "_")
        if key not in FIELDS:
            raise DHashError(f"{where}: unknown setting '{raw_key}' (known: {', '.join(FIELDS)})")
        if value is None:
            out[key] = None
            continue
        typ, meta = TYPES[key], FIELDS[key].metadata
        if isinstance(value, bool) and bool not in typ or not isinstance(value, typ):
            raise DHashError(f"{where}: '{raw_key}' must be a {' or '.join(t.__name__ for t in typ)}, got {value!r}")
        if isinstance(value, dict):
            value = {str(k).replace("-", "_"): v for k, v in value.items()}
        if meta["choices"] and value not in meta["choices"]:
            raise DHashError(f"{where}: '{raw_key}' must be one of {', '.join(meta['choices'])}, got {value!r}")
        if meta["minimum"] is not None and value < meta["minimum"]:
            raise DHashError(f"{where}: '{raw_key}' must be at least {meta['minimum']}, got {value}")
        problem = meta["check"](value) if meta["check"] else None
        if problem is not None:
            shown = repr(value) if isinstance(value, str) else value
            raise DHashError(f"{where}: '{raw_key}' must be {problem}, got {shown}")
        out[key] = float(value) if typ == (int, float) else value
    return out


__all__ = ["DEFAULTS", "FIELDS", "RUNTIME_KEYS", "Settings", "TRAIN_DEFAULT_KEYS", "check_settings", "setting"]
