"""A small CNN for 28–32 px images that trains in minutes on a CPU (dhash's default for Fashion-MNIST).

Three conv-BN-ReLU blocks (``width``, 2·``width``, 4·``width`` channels; 32, 64, 128 by default), each
followed by 2×2 max pooling, then a fully connected layer to ``features`` (256) outputs with ReLU and
dropout.
"""
from __future__ import annotations

import torch
from torch import nn

from .layers import conv_bn_relu
from .normalisation import small_image_spec


class SmallCNN(nn.Module):
    """conv(w)-pool-conv(2w)-pool-conv(4w)-pool → FC(``features``), w = ``width``."""

    def __init__(self, in_channels: int = 1, size: int = 28, features: int = 256, dropout: float = 0.2,
                 width: int = 32) -> None:
        super().__init__()
        self.input_spec = small_image_spec(size, in_channels)
        self.out_features = features
        self.conv = nn.Sequential(
            conv_bn_relu(in_channels, width), nn.MaxPool2d(2),
            conv_bn_relu(width, 2 * width), nn.MaxPool2d(2),
            conv_bn_relu(2 * width, 4 * width), nn.MaxPool2d(2),
        )
        side = size // 8
        self.fc = nn.Sequential(
            nn.Flatten(),
            nn.Linear(4 * width * side * side, features),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv(x))
