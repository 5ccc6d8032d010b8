"""Image files decoded and resized once, kept in memory as uint8 arrays at the backbone's input size.

Fine-tuning on image files would otherwise decode and resize every image in every epoch. ``preload``
runs that step once for the items a run trains and validates on (in ``DataLoader`` worker processes),
when the arrays fit in a quarter of the available memory, and returns them as an in-memory ``Source``.
The images are exactly what the transform's ``fit`` step makes of the files (grey stays grey, EXIF
orientation, JPEG draft decoding), so the augmentation and normalisation that follow are unchanged;
dhash's choice for a folder that mixes grey and colour images: all are kept as RGB.
"""
from __future__ import annotations

import os

import numpy as np
import torch
from rich.progress import Progress
from torch.utils.data import DataLoader

from ..models.spec import InputSpec
from .dataset import ImageDataset
from .source import Source
from .transforms import ImageTransform

MEMORY_SHARE = 4  # use at most 1/4 of the available memory


def available_memory() -> int:
    """Bytes of memory available to new allocations (Linux ``MemAvailable``; else free pages)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


class _FitRGB:
    """An image as ``fit`` makes it, always as 3 × S × S uint8 (grey repeated), and whether it was grey."""

    def __init__(self, spec: InputSpec) -> None:
        self.transform = ImageTransform(spec, train=False)

    def __call__(self, image) -> tuple[torch.Tensor, bool]:
        x = self.transform.fit(image)
        return torch.from_numpy(np.broadcast_to(x, (3, *x.shape[1:])).copy()), x.shape[0] == 1


def fits_in_memory(count: int, spec: InputSpec) -> bool:
    """Whether ``count`` RGB images at the spec's size fit in the memory share."""
    return count * 3 * spec.size**2 <= available_memory() // MEMORY_SHARE


def preload(source: Source, indices: np.ndarray, spec: InputSpec, workers: int, progress: Progress | None = None) -> Source:
    """The items ``source[indices]`` as an in-memory ``Source`` of uint8 images at ``spec.size`` (same labels and ids).

    An image that fails to decode raises ``DHashError`` naming it, as in training.
    """
    size = spec.size
    pixels = np.empty((len(indices), size, size, 3), dtype=np.uint8)
    grey = np.empty(len(indices), dtype=bool)
    loader = DataLoader(ImageDataset(source, indices, _FitRGB(spec)), batch_size=64, num_workers=workers)
    task = progress.add_task("Decoding images", total=len(indices)) if progress is not None else None
    start = 0
    for (x, is_grey), _, _ in loader:
        pixels[start : start + len(x)] = x.permute(0, 2, 3, 1).numpy()
        grey[start : start + len(x)] = is_grey.numpy()
        start += len(x)
        if task is not None:
            progress.advance(task, len(x))
    labels = None if source.labels is None else source.labels[indices]
    return Source(name=source.name, images=pixels[..., 0].copy() if grey.all() else pixels, labels=labels,
                  classes=list(source.classes), ids=[source.ids[i] for i in indices])


__all__ = ["available_memory", "fits_in_memory", "preload"]
