"""The "no network" backbone: raw normalised pixels flattened to a vector (for LSH / ITQ on pixels)."""
from __future__ import annotations

import torch
from torch import nn

from .normalisation import small_image_spec


class Pixels(nn.Module):
    """Flattens a ``channels × size × size`` image to ``channels·size²`` features; no parameters."""

    def __init__(self, in_channels: int = 1, size: int = 28) -> None:
        super().__init__()
        self.input_spec = small_image_spec(size, in_channels)
        self.out_features = in_channels * size * size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)
