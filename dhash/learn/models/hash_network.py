"""A backbone with a linear hash head and, when a method needs one, a linear classification head."""
from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn

from ..methods.base import NetOutput


class HashNetwork(nn.Module):
    """``backbone`` → features → hash head (``bits`` raw outputs) and classifier head (``num_classes`` logits).

    The hash head is linear with no activation: methods apply tanh / normalisation themselves.
    With ``hash_head=False`` (LSH, ITQ) ``h`` is the backbone's features.
    """

    def __init__(self, backbone: nn.Module, bits: int, num_classes: int | None = None, hash_head: bool = True) -> None:
        super().__init__()
        self.backbone = backbone
        self.bits = bits
        self.input_spec = backbone.input_spec
        dim = backbone.out_features
        self.hash_head = nn.Linear(dim, bits) if hash_head else None
        self.classifier = nn.Linear(dim, num_classes) if num_classes else None

    def forward(self, x: torch.Tensor) -> NetOutput:
        features = self.backbone(x)
        h = self.hash_head(features) if self.hash_head is not None else features
        logits = self.classifier(features) if self.classifier is not None else None
        return NetOutput(h=h, logits=logits)

    def backbone_parameters(self) -> Iterator[nn.Parameter]:
        """Parameters of the (possibly pretrained) backbone."""
        return self.backbone.parameters()

    def head_parameters(self) -> Iterator[nn.Parameter]:
        """Parameters of the freshly initialised heads (trained with a larger learning rate on a pretrained backbone)."""
        for head in (self.hash_head, self.classifier):
            if head is not None:
                yield from head.parameters()
