"""Loading a backbone's weights from a state-dict file, with one-line errors."""
from __future__ import annotations

import os
from collections.abc import Callable, Mapping

import torch
from torch import nn

from ...errors import DHashError


Renamer = Callable[[Mapping[str, torch.Tensor]], Mapping[str, torch.Tensor]]


def load_state_file(model: nn.Module, path: str, rename: Renamer | None = None) -> None:
    """Load the state dict saved in ``path`` into ``model`` strictly (keys first mapped by ``rename``)."""
    if not os.path.isfile(path):
        raise DHashError(f"{path}: weights file not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable file is a user error
        raise DHashError(f"{path}: not a readable PyTorch weights file ({_one_line(e)})") from None
    if isinstance(state, Mapping) and "state_dict" in state and isinstance(state["state_dict"], Mapping):
        state = state["state_dict"]
    if not isinstance(state, Mapping):
        raise DHashError(f"{path}: expected a state dict, found {type(state).__name__}")
    if rename is not None:
        state = rename(state)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise DHashError(f"{path}: weights do not match the network ({_one_line(e)})") from None


def _one_line(e: Exception, limit: int = 300) -> str:
    """An exception's message squeezed onto one line, cut to ``limit`` characters."""
    return " ".join(f"{type(e).__name__}: {e}".split())[:limit]
