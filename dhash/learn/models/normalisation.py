"""Per-channel normalisation statistics the backbones declare in their ``InputSpec``."""
from __future__ import annotations

from ...errors import DHashError
from .spec import InputSpec

FASHION_MNIST_MEAN, FASHION_MNIST_STD = (0.286,), (0.353,)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def small_image_spec(size: int, channels: int) -> InputSpec:
    """Spec for the small networks: Fashion-MNIST statistics for grey images, ImageNet ones for RGB."""
    if size < 8:
        raise DHashError(f"size must be at least 8 px for the small networks (three 2x2 poolings), not {size}")
    if channels == 1:
        return InputSpec(size=size, channels=1, mean=FASHION_MNIST_MEAN, std=FASHION_MNIST_STD)
    if channels == 3:
        return InputSpec(size=size, channels=3, mean=IMAGENET_MEAN, std=IMAGENET_STD)
    raise DHashError(f"in_channels must be 1 (grey) or 3 (RGB), not {channels}")


def imagenet_spec() -> InputSpec:
    """Spec of torchvision's ImageNet-trained networks: 224 px RGB."""
    return InputSpec(size=224, channels=3, mean=IMAGENET_MEAN, std=IMAGENET_STD)
