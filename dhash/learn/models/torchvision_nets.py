"""torchvision's ImageNet classifiers as feature extractors: the penultimate layer, classification head removed.

AlexNet and VGG-16 give the 4096-d fc7 output (the features the hashing papers build on), ResNets the
pooled output (512 / 2048). ``pretrained=True`` loads torchvision's default ImageNet weights from the
torch hub cache (``torch.hub.get_dir()/checkpoints``), never downloading; ``weights=FILE`` loads a
torchvision state dict of the full classifier from FILE instead.
"""
from __future__ import annotations

import os

import torch
import torchvision
from torch import nn

from ...errors import DHashError
from .normalisation import imagenet_spec
from .weights import load_state_file


class TorchvisionBackbone(nn.Module):
    """A torchvision classifier whose last layer is replaced by the identity."""

    def __init__(self, net: nn.Module, out_features: int) -> None:
        super().__init__()
        self.net = net
        self.out_features = out_features
        self.input_spec = imagenet_spec()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def cached_weights_file(name: str, url: str) -> str:
    """The torch hub cache path of torchvision's weights ``url``; a one-line error saying how to get them if absent."""
    folder = os.path.join(torch.hub.get_dir(), "checkpoints")
    path = os.path.join(folder, os.path.basename(url))
    if not os.path.isfile(path):
        raise DHashError(
            f"pretrained {name} weights not found: download {url} and put {os.path.basename(url)} in {folder} "
            "(or pass --weights FILE)"
        )
    return path


def _build(name: str, pretrained: bool, weights: str | None) -> TorchvisionBackbone:
    """Construct ``torchvision.models.<name>``, load its weights (strictly, head included), then drop the head."""
    constructor = getattr(torchvision.models, name)
    path = weights if weights is not None else (
        cached_weights_file(name, torchvision.models.get_model_weights(constructor).DEFAULT.url) if pretrained else None
    )
    net = constructor(weights=None)
    if path is not None:
        load_state_file(net, path)
    if hasattr(net, "fc"):  # ResNets
        out_features = net.fc.in_features
        net.fc = nn.Identity()
    else:  # AlexNet, VGG: keep fc6-fc7, drop fc8
        out_features = net.classifier[-1].in_features
        net.classifier[-1] = nn.Identity()
    return TorchvisionBackbone(net, out_features)


def alexnet(pretrained: bool = False, weights: str | None = None) -> TorchvisionBackbone:
    """AlexNet (Krizhevsky et al. 2012, torchvision's one-GPU variant), 4096-d fc7 features."""
    return _build("alexnet", pretrained, weights)


def vgg16(pretrained: bool = False, weights: str | None = None) -> TorchvisionBackbone:
    """VGG-16 (Simonyan & Zisserman 2015), 4096-d fc7 features."""
    return _build("vgg16", pretrained, weights)


def resnet18(pretrained: bool = False, weights: str | None = None) -> TorchvisionBackbone:
    """ResNet-18 (He et al. 2016), 512-d pooled features."""
    return _build("resnet18", pretrained, weights)


def resnet50(pretrained: bool = False, weights: str | None = None) -> TorchvisionBackbone:
    """ResNet-50 (He et al. 2016), 2048-d pooled features."""
    return _build("resnet50", pretrained, weights)
