"""The classifier baseline: cross-entropy on a linear read-out of the hash-layer output, codes sgn(h)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from dhash.learn.methods import get_method
from dhash.learn.methods.base import NetOutput, TrainState

STATE = TrainState(epoch=0, epochs=1, step=0, steps_per_epoch=1)


def test_loss_is_cross_entropy_of_the_readout_and_trains_it():
    torch.manual_seed(0)
    method = get_method("classifier")(12, 4)
    h = torch.randn(8, 12, requires_grad=True)
    labels = torch.eye(4)[torch.tensor([0, 1, 2, 3, 0, 1, 2, 3])]
    loss, parts = method.loss(NetOutput(h=h), labels, STATE)
    expected = F.cross_entropy(h @ method.readout.weight.T + method.readout.bias, labels.argmax(1))
    assert torch.isclose(loss, expected) and parts["class"] == loss.item()
    loss.backward()
    assert h.grad.abs().sum() > 0 and method.readout.weight.grad.abs().sum() > 0  # both the network and the read-out learn
    assert torch.equal(method.project(h), h)  # codes are the signs of the hash-layer output


def test_multi_label_batches_use_per_class_bce():
    method = get_method("classifier")(8, 3)
    h = torch.randn(4, 8)
    labels = torch.tensor([[1.0, 1, 0], [0, 1, 0], [0, 0, 1], [1, 0, 1]])
    loss, _ = method.loss(NetOutput(h=h), labels, STATE)
    assert torch.isclose(loss, F.binary_cross_entropy_with_logits(method.readout(h), labels))
