"""The method registry: ``--method NAME`` → the class implementing that paper.

Entries are ``module:Class`` strings, imported on first use.
"""
from __future__ import annotations

import importlib

from ...errors import DHashError
from .base import Method, NetOutput, Params, TrainState, describe_params, parse_params

_REGISTRY = {
    "dha": "dha:DHA",
    "dha-t": "dha:DHAT",
    "dpsh": "dpsh:DPSH",
    "hashnet": "hashnet:HashNet",
    "dsh": "dsh:DSH",
    "hegh": "hegh:HEGH",
    "dual-hinge": "dual_hinge:DualHinge",
    "expo": "expo:Expo",
    "sdsh": "sdsh:SDSH",
    "lsh": "classic:LSH",
    "itq": "classic:ITQ",
    "pca-rr": "classic:PCARR",
    "classifier": "classifier:Classifier",
}


def method_names() -> list[str]:
    """Names accepted by ``--method``."""
    return list(_REGISTRY)


def get_method(name: str) -> type[Method]:
    """The class registered under ``name``."""
    if name not in _REGISTRY:
        raise DHashError(f"unknown method '{name}' (choose from: {', '.join(_REGISTRY)})")
    module, cls = _REGISTRY[name].split(":")
    return getattr(importlib.import_module(f"{__name__}.{module}"), cls)


__all__ = ["Method", "NetOutput", "Params", "TrainState", "describe_params", "get_method", "method_names", "parse_params"]
