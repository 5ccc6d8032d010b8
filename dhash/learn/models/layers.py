"""Building blocks shared by the small networks."""
from __future__ import annotations

import torch
from torch import nn


def conv_bn_relu(cin: int, cout: int, kernel: int = 3) -> nn.Sequential:
    """``kernel``×``kernel`` convolution ("same" padding, no bias), batch norm, ReLU."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, padding=kernel // 2, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class ResidualBlock(nn.Module):
    """Basic residual block (He et al. 2016): ``relu(x + bn(conv(relu(bn(conv(x))))))``, width kept."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            conv_bn_relu(channels, channels),
            nn.Conv2d(channels, channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x + self.body(x))
