"""Exponentiated hashing loss (Mu & Liu 2017): hand value, bilinear relaxation, pre-training schedule."""
import math

import pytest
import torch
from torch.nn import functional as F

from dhash.learn.methods import NetOutput, TrainState, get_method, parse_params
from dhash.learn.methods.expo import Expo, ExpoParams

HASH_PHASE = TrainState(epoch=5, epochs=6, step=50, steps_per_epoch=10)


def test_hash_loss_hand_value():
    h = torch.tensor([[0.5, -1.0], [0.3, -0.2], [-0.8, 1.5]], dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([[1, 0], [1, 0], [0, 1]], dtype=torch.float64)
    u = [[math.tanh(v) for v in row] for row in h.tolist()]

    def pair(i, j, s):  # exp(−γ s ⟨u_i, u_j⟩ / K), default γ = 3
        return math.exp(-3 * s * (u[i][0] * u[j][0] + u[i][1] * u[j][1]) / 2)

    expected = (pair(0, 1, 1) + (pair(0, 2, -1) + pair(1, 2, -1)) / 2) / 2
    loss, parts = Expo(2, 2).loss(NetOutput(h=h, logits=torch.zeros(3, 2)), labels, HASH_PHASE)
    assert loss.item() == pytest.approx(expected, rel=1e-9)
    assert set(parts) == {"expo"}
    loss.backward()
    assert torch.isfinite(h.grad).all()
    # by hand: A_01 = 0.14247, A_02 = −0.49811, A_12 = −0.18605 →
    # (e^−3·0.14247 + (e^3·−0.49811 + e^3·−0.18605) / 2) / 2 = (0.65223 + (0.22438 + 0.57225) / 2) / 2
    assert expected == pytest.approx(0.52527, abs=1e-4)


def test_pair_term_is_bilinear_in_relaxed_codes():
    """log of a pair's loss is linear in each relaxed code: scaling tanh(h_i) by t scales it by t."""
    method = Expo(3, 2, ExpoParams(scale=2.0))
    same = torch.tensor([[1.0, 0.0], [1.0, 0.0]], dtype=torch.float64)
    u_i, u_j = torch.tensor([0.4, -0.7, 0.2], dtype=torch.float64), torch.tensor([0.9, 0.1, -0.5], dtype=torch.float64)
    logs = []
    for t in (0.25, 0.5, 1.0):
        h = torch.atanh(torch.stack([t * u_i, u_j]))
        logs.append(math.log(method.loss(NetOutput(h=h), same, HASH_PHASE)[0].item()))
    assert logs[1] == pytest.approx(2 * logs[0], rel=1e-9) and logs[2] == pytest.approx(4 * logs[0], rel=1e-9)
    assert logs[2] == pytest.approx(-2.0 * float(u_i @ u_j) / 3, rel=1e-9)


@pytest.mark.parametrize("similar", [True, False])
def test_loss_rewards_agreement_of_similar_and_disagreement_of_dissimilar(similar):
    labels = torch.tensor([[1.0, 0.0], [1.0, 0.0] if similar else [0.0, 1.0]])
    values = []
    for agree in (-0.9, -0.3, 0.3, 0.9):
        h = torch.atanh(torch.tensor([[0.95, 0.95], [agree / 0.95, agree / 0.95]]))
        values.append(Expo(2, 2).loss(NetOutput(h=h), labels, HASH_PHASE)[0].item())
    diffs = torch.tensor(values).diff()
    assert (diffs < 0).all() if similar else (diffs > 0).all()


def test_pretraining_phase_is_classification():
    torch.manual_seed(0)
    h = torch.randn(6, 4, requires_grad=True)
    logits = torch.randn(6, 3, requires_grad=True)
    labels = F.one_hot(torch.tensor([0, 1, 2, 0, 1, 2]), 3).float()
    state = TrainState(epoch=0, epochs=4, step=3, steps_per_epoch=10)
    loss, parts = Expo(4, 3).loss(NetOutput(h=h, logits=logits), labels, state)
    assert loss.item() == pytest.approx(F.cross_entropy(logits, labels.argmax(1)).item())
    assert set(parts) == {"classification"}
    loss.backward()
    assert h.grad is None and logits.grad is not None  # the hash layer is not trained while pre-training
    multi = labels.clone()
    multi[0, 1] = 1
    loss, _ = Expo(4, 3).loss(NetOutput(h=h, logits=logits), multi, state)
    assert loss.item() == pytest.approx(F.binary_cross_entropy_with_logits(logits, multi).item())


def test_hash_phase_ignores_logits():
    h = torch.randn(6, 4, requires_grad=True)
    logits = torch.randn(6, 3, requires_grad=True)
    labels = F.one_hot(torch.tensor([0, 1, 2, 0, 1, 2]), 3).float()
    loss, _ = Expo(4, 3).loss(NetOutput(h=h, logits=logits), labels, HASH_PHASE)
    loss.backward()
    assert logits.grad is None and torch.isfinite(h.grad).all() and h.grad.abs().sum() > 0


@pytest.mark.parametrize(
    "pretrain,epochs,switch_step",
    [(1.0, 4, 10), (2.0, 10, 20), (0.5, 4, 5), (1.0, 1, 5), (3.0, 2, 10), (0.0, 4, 0)],
)
def test_pretraining_schedule(pretrain, epochs, switch_step):
    """Pre-train for ``pretrain_epochs`` (at most half the run), then the hash loss; 0 = no pre-training."""
    method = Expo(4, 3, ExpoParams(pretrain_epochs=pretrain))
    phases = [method.pretraining(TrainState(s // 10, epochs, s, 10)) for s in range(epochs * 10)]
    assert phases == [s < switch_step for s in range(epochs * 10)]


def test_registry_and_no_pretrain_param():
    assert get_method("expo") is Expo
    assert Expo.needs_classifier and Expo.trainable and Expo.uses_hash_head
    assert parse_params(Expo, {"pretrain_epochs": "0"}).pretrain_epochs == 0.0
