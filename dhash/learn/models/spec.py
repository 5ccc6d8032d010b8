"""What a backbone expects of its input images."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class InputSpec:
    """Input size (square, pixels), channel count (1 grey or 3 RGB) and per-channel normalisation.

    Images are first scaled to [0, 1], then normalised as ``(x - mean) / std``. A spec with
    ``channels == 0`` stands for feature vectors, not images: no image transform applies.
    """

    size: int
    channels: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
