"""HEGH's "CNNs with CBAM" (Su et al. 2021, Section 3.2, Figs. 3–5) and its no-CBAM ablation (Table 5).

The basic network of Fig. 5 has eight layers; shortcut connections on layers 3, 4, 7 and 8
(Section 3.2.2 (2), Table 3) and three stacked CBAM modules right after layer 2 (Section 3.2.2 (1),
Tables 1–2). CBAM (Woo et al., ECCV 2018): channel attention = shared MLP (reduction 16) over the
average- and max-pooled features, sigmoid; spatial attention = 7×7 conv over [channel mean, channel
max], sigmoid.
dhash's reading: a "layer" is one 3×3 conv-BN-ReLU, or a two-conv basic residual block where the
paper has a shortcut. dhash's choice (widths and poolings are not in the text; kept small for CPU
speed at 28–32 px): layer 1 conv 32 + pool, layer 2 conv 32 (CBAMs at 14×14 / 16×16); layers 3–4
residual 32 + pool; layers 5–6 conv 64, conv 128 + pool; layers 7–8 residual 128; global average
pool, FC to ``features`` (256), ReLU.
"""
from __future__ import annotations

import torch
from torch import nn

from .layers import ResidualBlock, conv_bn_relu
from .normalisation import small_image_spec


class ChannelAttention(nn.Module):
    """``sigmoid(MLP(avgpool(x)) + MLP(maxpool(x)))``: one weight in [0, 1] per channel (B × C × 1 × 1)."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        hidden = max(channels // reduction, 1)
        self.mlp = nn.Sequential(nn.Linear(channels, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        avg_out, max_out = self.mlp(torch.stack([x.mean((2, 3)), x.amax((2, 3))])).unbind(0)  # one shared MLP
        return torch.sigmoid(avg_out + max_out)[:, :, None, None]


class SpatialAttention(nn.Module):
    """``sigmoid(conv7×7([mean_c(x), max_c(x)]))``: one weight in [0, 1] per position (B × 1 × H × W)."""

    def __init__(self, kernel: int = 7) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel, padding=kernel // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.conv(torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], 1)))


class CBAM(nn.Module):
    """Channel attention, then spatial attention, each multiplying the features (Woo et al. 2018, Fig. 1)."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        self.channel = ChannelAttention(channels, reduction)
        self.spatial = SpatialAttention()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return the refined features and the channel and spatial attention maps."""
        mc = self.channel(x)
        x = x * mc
        ms = self.spatial(x)
        return x * ms, mc, ms


class CBAMCNN(nn.Module):
    """The Fig. 5 network with ``cbam_modules`` CBAMs after layer 2 (none when ``cbam=False``)."""

    def __init__(
        self, in_channels: int = 1, size: int = 28, features: int = 256, cbam: bool = True, cbam_modules: int = 3
    ) -> None:
        super().__init__()
        self.input_spec = small_image_spec(size, in_channels)
        self.out_features = features
        self.front = nn.Sequential(conv_bn_relu(in_channels, 32), nn.MaxPool2d(2), conv_bn_relu(32, 32))  # layers 1–2
        self.cbam = nn.ModuleList(CBAM(32) for _ in range(cbam_modules if cbam else 0))
        self.back = nn.Sequential(
            ResidualBlock(32), ResidualBlock(32), nn.MaxPool2d(2),  # layers 3–4
            conv_bn_relu(32, 64), conv_bn_relu(64, 128), nn.MaxPool2d(2),  # layers 5–6
            ResidualBlock(128), ResidualBlock(128),  # layers 7–8
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
            nn.Linear(128, features), nn.ReLU(inplace=True),
        )

    def forward(
        self, x: torch.Tensor, return_attention: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, list[tuple[torch.Tensor, torch.Tensor]]]:
        """Features ``B × out_features``; with ``return_attention`` also ``[(channel, spatial), ...]`` per CBAM."""
        x = self.front(x)
        maps = []
        for module in self.cbam:
            x, mc, ms = module(x)
            maps.append((mc, ms))
        features = self.back(x)
        return (features, maps) if return_attention else features
