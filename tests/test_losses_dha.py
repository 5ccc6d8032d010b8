"""DHA / DHA-t losses (Xu et al. 2019, Eq. 5–10) against torchvision's focal loss and a NumPy transcription."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torchvision.ops import sigmoid_focal_loss

from dhash.learn.methods import NetOutput, TrainState, get_method
from dhash.learn.methods.dha import DHA, DHAT, DHAParams, balance_weight, focal_pair_loss

STATE = TrainState(epoch=0, epochs=1, step=0, steps_per_epoch=1)


def one_hot(classes: list[int], c: int) -> torch.Tensor:
    return torch.nn.functional.one_hot(torch.tensor(classes), c).float()


def numpy_dha(raw: np.ndarray, labels: np.ndarray, beta: float | None, theta_frac: float, lam: float, cosine: bool = False) -> float:
    """Eq. 5–9 written out: tanh codes, σ(z) = 1/(1+e^{−α(z−θ)}), ω-weighted focal CE, λ·Q; means over i≠j / images."""
    n, k = raw.shape
    h = np.tanh(raw.astype(np.float64))
    y = labels.astype(np.float64)
    alpha = 10.0 / k
    if cosine:
        norm = np.linalg.norm(y, axis=1, keepdims=True)
        t = (y / norm) @ (y / norm).T
        s = (t > 0).astype(np.float64)
        theta = theta_frac * k * t
    else:
        s = ((y @ y.T) > 0).astype(np.float64)
        theta = theta_frac * k * s
    off = ~np.eye(n, dtype=bool)
    if beta is None:
        r = (1 - s[off]).sum() / s[off].sum()  # dissimilar : similar pairs
        beta = (r + 1) / (r + 2)
    total = 0.0
    for i in range(n):
        for j in range(n):
            if i == j:
                continue
            z = h[i] @ h[j]
            sig = 1.0 / (1.0 + np.exp(-alpha * (z - theta[i, j])))
            omega = beta if s[i, j] == 1 else 1.0 - beta
            total += -omega * (s[i, j] * (1 - sig) ** 2 * np.log(sig) + (1 - s[i, j]) * sig**2 * np.log(1 - sig))
    pair = total / off.sum()
    quant = sum((1.0 / k) * (1 - np.exp(abs(h[i, j]) - 1)) for i in range(n) for j in range(k)) / n
    return pair + lam * quant


def test_registry_names():
    assert get_method("dha") is DHA and get_method("dha-t") is DHAT
    assert DHAParams().gamma == 2.0 and DHAParams().alpha_scale == 10.0


def test_focal_bracket_equals_torchvision_sigmoid_focal_loss():
    torch.manual_seed(0)
    x = torch.randn(50, 7, dtype=torch.float64) * 6
    s = (torch.rand(50, 7) > 0.6).double()
    ours = focal_pair_loss(x, s, gamma=2.0)
    oracle = sigmoid_focal_loss(x, s, alpha=-1, gamma=2, reduction="none")
    torch.testing.assert_close(ours, oracle, rtol=1e-10, atol=1e-12)


def test_dha_pair_term_is_focal_loss_of_shifted_scaled_inner_products():
    """The pair part of DHA.loss = ω-weighted mean of sigmoid_focal_loss(α(z−θ), s) over pairs i ≠ j."""
    torch.manual_seed(1)
    bits, raw = 16, torch.randn(9, 16, dtype=torch.float64)
    labels = one_hot([0, 1, 2, 0, 1, 2, 0, 0, 1], 3).double()
    method = DHA(bits, 3, DHAParams(beta=0.75, lam=0.0, theta=0.4))
    loss, parts = method.loss(NetOutput(h=raw), labels, STATE)
    h = torch.tanh(raw)
    s = (labels @ labels.T > 0).double()
    x = (10.0 / bits) * (h @ h.T - 0.4 * bits * s)
    omega = 0.75 * s + 0.25 * (1 - s)
    off = ~torch.eye(9, dtype=torch.bool)
    expected = (omega * sigmoid_focal_loss(x, s, alpha=-1, gamma=2, reduction="none"))[off].mean()
    torch.testing.assert_close(loss, expected)
    assert parts["pair"] == pytest.approx(expected.item())


@pytest.mark.parametrize("beta", [None, 0.9])
def test_dha_matches_numpy_transcription(beta):
    rng = np.random.default_rng(2)
    raw = rng.normal(size=(7, 8)) * 1.5
    labels = np.eye(3)[[0, 1, 1, 2, 0, 0, 2]]
    params = DHAParams(beta=0.0 if beta is None else beta, lam=0.3, theta=0.5)
    loss, parts = DHA(8, 3, params).loss(NetOutput(h=torch.tensor(raw)), torch.tensor(labels), STATE)
    assert loss.item() == pytest.approx(numpy_dha(raw, labels, beta, 0.5, 0.3), rel=1e-6)  # pairs.py works in float32
    if beta is None:  # 42 ordered pairs i ≠ j, 10 of them similar: r = 32/10, β = (r+1)/(r+2) = 42/52
        assert parts["beta"] == pytest.approx(42 / 52)


@pytest.mark.parametrize("ratio, beta", [(10, 11 / 12), (5, 6 / 7), (1, 2 / 3)])
def test_dha_balance_weight_reproduces_the_papers_values(ratio, beta):
    # Section 4.2: dissimilar:similar ratios of about 10, 5, 1 (CIFAR-10, NUS-WIDE, MS COCO) → β = 11/12, 6/7, 2/3
    s = torch.tensor([1.0] * 4 + [0.0] * (4 * ratio))
    assert balance_weight(s, torch.ones_like(s)).item() == pytest.approx(beta)
    # r = 1 (balanced multi-label data) gives 2/3, not the DHA-W ablation's 1/2; only all-similar batches give 1/2
    assert balance_weight(torch.ones(6), torch.ones(6)).item() == pytest.approx(0.5)


def test_dha_t_matches_numpy_transcription_on_multilabel_data():
    rng = np.random.default_rng(3)
    raw = rng.normal(size=(6, 8))
    labels = np.array([[1, 0, 0, 1], [1, 1, 0, 0], [0, 0, 1, 0], [1, 0, 0, 1], [0, 1, 1, 1], [0, 0, 0, 1]], dtype=float)
    loss, _ = DHAT(8, 4, DHAParams(lam=0.1)).loss(NetOutput(h=torch.tensor(raw)), torch.tensor(labels), STATE)
    assert loss.item() == pytest.approx(numpy_dha(raw, labels, None, 0.5, 0.1, cosine=True), rel=1e-6)  # pairs.py works in float32
    # partial overlap (t < 1) asks for a smaller shift than full agreement, so DHA-t's loss is lower here
    loss_binary, _ = DHA(8, 4, DHAParams(lam=0.1)).loss(NetOutput(h=torch.tensor(raw)), torch.tensor(labels), STATE)
    assert loss.item() < loss_binary.item()


def test_dha_t_equals_dha_on_single_label_data():
    torch.manual_seed(4)
    raw, labels = torch.randn(10, 12), one_hot([0, 1, 2, 3, 0, 1, 2, 3, 0, 1], 4)
    a, _ = DHA(12, 4).loss(NetOutput(h=raw), labels, STATE)
    b, _ = DHAT(12, 4).loss(NetOutput(h=raw), labels, STATE)
    torch.testing.assert_close(a, b)


def test_quantisation_term_vanishes_at_binary_codes_and_is_largest_at_zero():
    labels = one_hot([0, 1, 0, 1], 2)
    signs = torch.tensor([[1.0, -1, 1, 1], [-1, 1, -1, -1], [1, -1, 1, 1], [-1, 1, -1, -1]])
    _, at_binary = DHA(4, 2).loss(NetOutput(h=signs * 30), labels, STATE)  # tanh(30) == 1 in float32
    _, at_zero = DHA(4, 2).loss(NetOutput(h=torch.zeros(4, 4)), labels, STATE)
    assert at_binary["quant"] == 0.0
    assert at_zero["quant"] == pytest.approx(1 - np.exp(-1))


def test_ideal_codes_beat_random_codes_and_loss_is_nonnegative():
    torch.manual_seed(5)
    classes = [0, 1, 2, 3] * 4
    labels = one_hot(classes, 4)
    centres = torch.tensor([[1.0] * 8 + [1] * 8, [1] * 8 + [-1] * 8, [-1] * 8 + [1] * 8, [-1] * 8 + [-1] * 8])
    ideal, _ = DHA(16, 4).loss(NetOutput(h=centres[classes] * 30), labels, STATE)
    for seed in range(5):
        torch.manual_seed(seed)
        rand, _ = DHA(16, 4).loss(NetOutput(h=torch.randn(16, 16) * 3), labels, STATE)
        assert 0 <= ideal.item() < rand.item()


@pytest.mark.parametrize("cls", [DHA, DHAT])
@pytest.mark.parametrize("scale", [0.0, 1e-30, 1.0, 1e4, 1e30])
def test_gradients_finite_for_extreme_inputs(cls, scale):
    torch.manual_seed(6)
    raw = (torch.randn(12, 32) * scale).requires_grad_()
    labels = one_hot([0, 1, 2] * 4, 3)
    loss, _ = cls(32, 3).loss(NetOutput(h=raw), labels, STATE)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(raw.grad).all()


def test_gradient_pulls_similar_pairs_together():
    """One gradient step on the codes raises the inner product of a similar pair and lowers a dissimilar one."""
    torch.manual_seed(7)
    raw = (torch.randn(6, 16) * 0.5).requires_grad_()
    labels = one_hot([0, 0, 1, 1, 2, 2], 3)
    loss, _ = DHA(16, 3).loss(NetOutput(h=raw), labels, STATE)
    loss.backward()
    with torch.no_grad():
        before = torch.tanh(raw) @ torch.tanh(raw).T
        stepped = torch.tanh(raw - 5.0 * raw.grad)
        after = stepped @ stepped.T
    assert after[0, 1] > before[0, 1] and after[0, 2] < before[0, 2]
