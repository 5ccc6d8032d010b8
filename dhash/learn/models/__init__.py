"""Backbones (``--backbone NAME``) and the hashing network built on them.

Every backbone is an ``nn.Module`` mapping a normalised image batch to ``B × out_features``
features, with ``.out_features`` and ``.input_spec`` (what the data transforms must produce).
Entries are ``module:factory`` strings, imported on first use (torchvision is slow to import).
"""
from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from typing import Any

from torch import nn

from ...errors import DHashError
from .hash_network import HashNetwork
from .spec import InputSpec
from .weights import load_state_file

_BACKBONES = {
    "small-cnn": "small_cnn:SmallCNN",
    "cbam-cnn": "cbam_cnn:CBAMCNN",
    "alexnet": "torchvision_nets:alexnet",
    "vgg16": "torchvision_nets:vgg16",
    "resnet18": "torchvision_nets:resnet18",
    "resnet50": "torchvision_nets:resnet50",
    "efficientnet-lite0": "efficientnet_lite:efficientnet_lite0",
    "pixels": "pixels:Pixels",
    "features": "features:Features",
}
_PRETRAINED = ("alexnet", "vgg16", "resnet18", "resnet50", "efficientnet-lite0")  # factories taking pretrained=, weights=


def backbone_names() -> list[str]:
    """Names accepted by ``--backbone``."""
    return list(_BACKBONES)


def _factory(name: str) -> Callable[..., nn.Module]:
    if name not in _BACKBONES:
        raise DHashError(f"unknown backbone '{name}' (choose from: {', '.join(_BACKBONES)})")
    module, attr = _BACKBONES[name].split(":")
    return getattr(importlib.import_module(f"{__name__}.{module}"), attr)


def backbone_options(name: str) -> dict[str, Any]:
    """The options ``build_backbone(name, **options)`` accepts, with their defaults."""
    params = inspect.signature(_factory(name)).parameters
    return {k: p.default for k, p in params.items() if k not in ("pretrained", "weights")}


def _coerce(name: str, key: str, value: Any, default: Any) -> Any:
    """Convert a string option value (from the CLI or a config file) to the type of its default."""
    if not isinstance(value, str) or isinstance(default, str):
        return value
    if isinstance(default, bool):
        if value.lower() not in ("1", "0", "true", "false", "yes", "no"):
            raise DHashError(f"backbone '{name}' option {key}={value}: expected true or false")
        return value.lower() in ("1", "true", "yes")
    try:
        return type(default)(value)
    except ValueError:
        raise DHashError(f"backbone '{name}' option {key}={value}: expected a {type(default).__name__}") from None


def build_backbone(name: str, pretrained: bool = False, weights: str | None = None, **options: Any) -> nn.Module:
    """Build backbone ``name``.

    ``pretrained`` loads ImageNet weights (torchvision cache, or the efficientnet-lite0 package);
    ``weights`` is a state-dict file to load instead (for any backbone). ``options`` are the
    factory's keyword arguments (see ``backbone_options``), e.g. ``cbam=False`` or ``in_channels=3``.
    """
    factory = _factory(name)
    known = backbone_options(name)
    for key in options:
        if key not in known:
            choices = ", ".join(f"{k}={v!r}" for k, v in known.items()) or "none"
            raise DHashError(f"backbone '{name}' has no option '{key}' (options: {choices})")
    options = {k: _coerce(name, k, v, known[k]) for k, v in options.items()}
    if name in _PRETRAINED:
        return factory(pretrained=pretrained, weights=weights, **options)
    if pretrained:
        raise DHashError(f"backbone '{name}' has no pretrained weights (pretrained backbones: {', '.join(_PRETRAINED)})")
    model = factory(**options)
    if weights is not None:
        load_state_file(model, weights)
    return model


__all__ = ["HashNetwork", "InputSpec", "backbone_names", "backbone_options", "build_backbone"]
