"""The backbone for precomputed features (an HDF5 feature file): vectors pass through, only the heads train."""
from __future__ import annotations

import torch
from torch import nn

from ...errors import DHashError
from .spec import InputSpec

FEATURE_SPEC = InputSpec(size=0, channels=0, mean=(), std=())  # not an image: no transform applies


class Features(nn.Module):
    """Identity on ``B × dim`` feature vectors; ``dim`` is the feature file's width."""

    def __init__(self, dim: int = 0) -> None:
        super().__init__()
        if dim < 1:
            raise DHashError("backbone 'features' needs dim=D, the width of the feature vectors")
        self.input_spec = FEATURE_SPEC
        self.out_features = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.float()
