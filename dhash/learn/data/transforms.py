"""Image → normalised tensor, as a backbone's ``InputSpec`` asks, with light augmentation for training.

Steps: RGB → grey where the spec has one channel (PIL's ITU-R 601 luma); resize the shorter side
to ``spec.size`` and centre-crop the square (keeps the aspect ratio; PIL's antialiased bilinear;
skipped for images already at the size); in training, augment; scale to [0, 1] and normalise with
the spec's mean and std (a multiply and an add), grey → 3 channels where the spec has three.
Pixels stay uint8 until that last step; an in-memory image already at the size (Fashion-MNIST,
CIFAR-10 for the small networks) never touches PIL and costs a few array operations.

Training augmentation, chosen by the image's own colour:
- grey images (Fashion-MNIST, MNIST): a random shift of up to ``size / 14`` px (2 px at 28 px)
  with black fill, no flip (a flip turns some digits into others, and the small grey sets are
  centred on black);
- colour images: a random crop of the image reflection-padded by ``size / 8`` (4 px at 32, 28 px
  at 224), flipped left-right with probability ½ — the usual CIFAR recipe, scaled with the size.
Each image's draw is a function of a key (``item_key(seed, item)``: training passes the epoch's
seed and the item's index), so an image gets the same augmentation whichever process or data-loader
worker loads it; without a key the draw comes from torch's generator.
"""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image, ImageOps

from ..models.spec import InputSpec

GREY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"}


class ImageTransform:
    """Callable: uint8 H×W / H×W×3 array or PIL image → float32 tensor ``channels × size × size``."""

    def __init__(self, spec: InputSpec, train: bool):
        if spec.channels not in (1, 3) or len(spec.mean) != spec.channels or len(spec.std) != spec.channels:
            raise ValueError(f"InputSpec needs 1 or 3 channels and a mean and std per channel: {spec}")
        self.spec, self.train = spec, train
        std = torch.tensor(spec.std, dtype=torch.float64).view(-1, 1, 1)  # C × 1 × 1
        self.scale = (1 / (255 * std)).float()  # uint8 v → (v / 255 - mean) / std = v * scale + shift
        self.shift = (-torch.tensor(spec.mean, dtype=torch.float64).view(-1, 1, 1) / std).float()

    def __call__(self, image: np.ndarray | Image.Image, key: int | None = None) -> torch.Tensor:
        x = self.fit(image)
        if self.train:
            x = self._augment(x, key)
        pixels = torch.from_numpy(np.ascontiguousarray(x)).float()
        return pixels.mul(self.scale).add_(self.shift)  # broadcasting turns grey into 3 channels where asked

    def __repr__(self) -> str:
        return f"ImageTransform({self.spec}, train={self.train})"

    def fit(self, image: np.ndarray | Image.Image) -> np.ndarray:
        """uint8 (1 or 3) × size × size: grey where the spec is grey, resized and centre-cropped."""
        size = self.spec.size
        if isinstance(image, np.ndarray):
            array = _check(image)
            if array.shape[:2] == (size, size) and not (array.shape[2] == 3 and self.spec.channels == 1):
                return array.transpose(2, 0, 1)
            image = Image.fromarray(array[:, :, 0] if array.shape[2] == 1 else array)
        grey = image.mode in GREY_MODES or self.spec.channels == 1
        if image.format == "JPEG":
            image.draft("L" if grey else "RGB", (size, size))  # decode at a reduced scale, still ≥ size
        if image.format:  # a file: honour its EXIF orientation
            image = ImageOps.exif_transpose(image)
        image = image.convert("L" if grey else "RGB")
        if image.size != (size, size):
            w, h = image.size
            scale = size / min(w, h)
            w, h = max(size, round(w * scale)), max(size, round(h * scale))
            left, top = (w - size) // 2, (h - size) // 2
            image = image.resize((w, h), Image.Resampling.BILINEAR).crop((left, top, left + size, top + size))
        if grey:
            return np.array(image)[None]  # np.array: a writable copy, which torch wraps without a warning
        return np.stack([np.asarray(band) for band in image.split()])

    def _augment(self, x: np.ndarray, key: int | None) -> np.ndarray:
        size = self.spec.size
        grey = x.shape[0] == 1
        pad = max(1, round(size / 14)) if grey else max(1, size // 8)
        # one draw for the offsets (each in -pad..pad) and the flip bit
        choices = 2 * (2 * pad + 1) ** 2
        draw = int(torch.randint(0, choices, ())) if key is None else key % choices
        flip, offset = draw % 2, draw // 2
        dy, dx = offset // (2 * pad + 1) - pad, offset % (2 * pad + 1) - pad
        if grey:
            out = np.zeros_like(x)
            out[:, max(dy, 0) : size + min(dy, 0), max(dx, 0) : size + min(dx, 0)] = x[
                :, max(-dy, 0) : size - max(dy, 0), max(-dx, 0) : size - max(dx, 0)
            ]
            return out
        rows, cols = _reflect(np.arange(size) - dy, size), _reflect(np.arange(size) - dx, size)
        return x.take(rows, axis=1).take(cols[::-1] if flip else cols, axis=2)


def item_key(seed: int, item: int) -> int:
    """A 64-bit key for item ``item``'s augmentation in the epoch seeded ``seed`` (SplitMix64 of both)."""
    z = (seed * 0x9E3779B97F4A7C15 + item + 1) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return z ^ (z >> 31)


def build_transform(spec: InputSpec, train: bool) -> ImageTransform | None:
    """The transform for a backbone's input spec; ``train`` adds augmentation (see the module docstring).

    None for feature-vector specs (``channels == 0``), whose items need no transform.
    """
    return ImageTransform(spec, train) if spec.channels else None


def to_float_tensor(image: np.ndarray | Image.Image) -> torch.Tensor:
    """An image as it is: float32 tensor C×H×W in [0, 1] (C = 1 for grey images, else 3)."""
    if isinstance(image, Image.Image):
        image = np.asarray(image.convert("L" if image.mode in GREY_MODES else "RGB"))
    return torch.from_numpy(_check(image).transpose(2, 0, 1) / np.float32(255))


def _check(image: np.ndarray) -> np.ndarray:
    """A uint8 H×W or H×W×3 array as H×W×C."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        kind = f"{type(image).__name__} {getattr(image, 'dtype', '')}".strip()
        raise TypeError(f"expected a uint8 array or a PIL image, got {kind}")
    if image.ndim == 2:
        return image[:, :, None]
    if image.ndim != 3 or image.shape[2] not in (1, 3):
        raise TypeError(f"expected an H×W or H×W×3 image, got shape {image.shape}")
    return image


def _reflect(index: np.ndarray, size: int) -> np.ndarray:
    """Indices outside 0..size-1 mirrored about the edges (no edge repeat, as numpy's ``reflect`` pad)."""
    return (size - 1) - np.abs((size - 1) - np.abs(index))
