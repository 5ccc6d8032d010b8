"""DPSH, HashNet and DSH losses against hand-computed values and plain NumPy transcriptions."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dhash.learn.methods import NetOutput, TrainState, get_method
from dhash.learn.methods.dpsh import DPSH, DPSHParams
from dhash.learn.methods.dsh import DSH, DSHParams
from dhash.learn.methods.hashnet import HashNet, HashNetParams


def state(step: int = 0) -> TrainState:
    return TrainState(epoch=0, epochs=1, step=step, steps_per_epoch=100)


def one_hot(classes: list[int], c: int) -> torch.Tensor:
    return torch.nn.functional.one_hot(torch.tensor(classes), c).float()


def similarity(labels: np.ndarray) -> np.ndarray:
    return ((labels @ labels.T) > 0).astype(np.float64)


def test_registry_and_paper_defaults():
    assert get_method("dpsh") is DPSH and get_method("hashnet") is HashNet and get_method("dsh") is DSH
    assert DPSHParams().eta == 10.0
    assert (DSHParams().margin, DSHParams().alpha) == (2.0, 0.01)
    hp = HashNetParams()
    assert (hp.beta0, hp.beta_gamma, hp.beta_power, hp.alpha_scale) == (1.0, 0.005, 0.5, 10.0)


# --- DPSH -------------------------------------------------------------------------------------------

def numpy_dpsh(u: np.ndarray, items: np.ndarray, bank: np.ndarray, labels: np.ndarray, eta: float) -> float:
    """Σ_i Σ_{j≠i} (log(1+e^Θ) − s Θ) + η Σ_i ‖sgn(u_i) − u_i‖², Θ = ½ u_iᵀU_j over the N bank rows U
    (the batch rows replaced by u), divided by B·N."""
    bank = bank.copy()
    bank[items] = u
    s = similarity(labels)
    total = 0.0
    for i, item in enumerate(items):
        for j in range(len(bank)):
            if j != item:
                theta = 0.5 * u[i] @ bank[j]
                total += np.log1p(np.exp(theta)) - s[item, j] * theta
    total += eta * sum(((np.sign(u[i]) - u[i]) ** 2).sum() for i in range(len(u)))
    return total / (len(u) * len(bank))


def dpsh_loss(method: DPSH, u: torch.Tensor, items: list[int]) -> torch.Tensor:
    st = TrainState(epoch=0, epochs=1, step=0, steps_per_epoch=1, items=torch.tensor(items))
    return method.loss(NetOutput(h=u), method.bank_labels[items], st)[0]


def test_dpsh_matches_numpy_transcription_with_the_memory_bank():
    rng = np.random.default_rng(0)
    labels = np.eye(3)[[0, 1, 0, 2, 1, 0, 2, 2]]
    method = DPSH(8, 3)
    method.begin_training(torch.tensor(labels))
    first, second = rng.normal(size=(5, 8)), rng.normal(size=(3, 8))
    dpsh_loss(method, torch.tensor(first), [0, 1, 2, 3, 4])  # fills rows 0-4; rows 5-7 stay zero
    bank = np.zeros((8, 8))
    bank[:5] = first
    loss = dpsh_loss(method, torch.tensor(second), [4, 7, 1])
    assert loss.item() == pytest.approx(numpy_dpsh(second, np.array([4, 7, 1]), bank, labels, 10.0), rel=1e-9)
    bank[[4, 7, 1]] = second
    assert np.array_equal(method.bank.numpy(), bank)


def test_dpsh_gradient_matches_the_plain_pair_terms():
    """The loss's gradient equals autograd through the B × N pair terms written out directly."""
    rng = np.random.default_rng(1)
    labels = torch.tensor(np.eye(4)[rng.integers(0, 4, 30)])
    method = DPSH(6, 4)
    method.begin_training(labels)
    method.bank.copy_(torch.tensor(rng.normal(size=(30, 6))))
    items = [3, 17, 0, 29, 8]
    u = torch.tensor(rng.normal(size=(5, 6)), requires_grad=True)
    dpsh_loss(method, u, items).backward()

    plain = u.detach().clone().requires_grad_(True)
    bank = method.bank.clone()  # already holds the batch rows (detached), as in the loss
    theta = 0.5 * plain @ bank.T
    s = (labels[items] @ labels.T > 0).double()
    keep = torch.ones_like(theta, dtype=torch.bool)
    keep[torch.arange(5), items] = False
    pairs = ((torch.nn.functional.softplus(theta) - s * theta) * keep).sum()
    quant = 10.0 * (torch.sign(plain).detach() - plain).pow(2).sum()
    ((pairs + quant) / theta.numel()).backward()
    assert torch.allclose(u.grad, plain.grad, rtol=1e-10, atol=1e-14)


def test_dpsh_hand_value():
    """Two similar codes u = (1, 1), (1, −1): Θ = 0 → each of the 2 pairs costs log 2; b = u, no η term."""
    method = DPSH(2, 1)
    method.begin_training(torch.ones(2, 1))
    u = torch.tensor([[1.0, 1.0], [1.0, -1.0]])
    assert dpsh_loss(method, u, [0, 1]).item() == pytest.approx(2 * math.log(2) / 4)


def test_dpsh_gradient_flows_to_the_batch_only():
    method = DPSH(4, 2)
    method.begin_training(one_hot([0, 1, 0, 1], 2))
    u = torch.randn(2, 4, requires_grad=True)
    dpsh_loss(method, u, [2, 3]).backward()
    assert torch.isfinite(u.grad).all() and u.grad.abs().sum() > 0
    assert not method.bank.requires_grad


def test_dpsh_is_stable_for_huge_inner_products():
    method = DPSH(2, 2, DPSHParams(eta=0.0))
    method.begin_training(one_hot([0, 1, 1], 2))
    u = torch.tensor([[1e3, 1e3], [1e3, 1e3], [-1e3, -1e3]], requires_grad=True)
    # (0,1) dissimilar with Θ = +1e6, (1,2) similar with Θ = −1e6; (0,2) dissimilar with Θ = −1e6 costs 0
    loss = dpsh_loss(method, u, [0, 1, 2])
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(u.grad).all()
    assert loss.item() == pytest.approx(4e6 / 9, rel=1e-4)  # those two pairs, both orders, cost |Θ| each; not inf


# --- HashNet ----------------------------------------------------------------------------------------

def test_hashnet_continuation_schedule():
    m = HashNet(16, 2)
    assert m.beta(0) == 1.0 and m.beta(199) == 1.0
    assert m.beta(200) == pytest.approx(math.sqrt(2.0))
    assert m.beta(400) == pytest.approx(math.sqrt(3.0))
    assert m.beta(10_000) == pytest.approx(math.sqrt(51.0))
    smooth = HashNet(16, 2, HashNetParams(beta_stage=1, beta0=2.0))
    for t in (0, 1, 37, 1234):
        assert smooth.beta(t) == pytest.approx(2.0 * math.sqrt(1 + 0.005 * t))
    betas = [m.beta(t) for t in range(0, 5000, 50)]
    assert all(a <= b for a, b in zip(betas, betas[1:])) and betas[-1] > betas[0]


def test_hashnet_schedule_depends_only_on_step():
    """Same step → same loss whatever was computed before (resume-safe: no hidden counters)."""
    torch.manual_seed(0)
    z, labels = torch.randn(8, 16), one_hot([0, 1, 0, 1, 2, 2, 0, 1], 3)
    fresh, _ = HashNet(16, 3).loss(NetOutput(h=z), labels, state(1000))
    used = HashNet(16, 3)
    for step in (0, 5000, 123):
        used.loss(NetOutput(h=z), labels, state(step))
    again, parts = used.loss(NetOutput(h=z), labels, state(1000))
    assert again.item() == fresh.item()
    assert parts["beta"] == pytest.approx(math.sqrt(6.0))


def numpy_hashnet(z: np.ndarray, labels: np.ndarray, beta: float) -> float:
    """Σ w_ij (log(1+e^{α⟨h_i,h_j⟩}) − α s_ij⟨h_i,h_j⟩) / Σ w_ij, w = |S|/|S₁| or |S|/|S₀|, h = tanh(βz), α = 10/K."""
    n, k = z.shape
    h, s = np.tanh(beta * z), similarity(labels)
    pairs = [(i, j) for i in range(n) for j in range(n) if i != j]
    n1 = sum(s[i, j] for i, j in pairs)
    n0 = len(pairs) - n1
    total = weights = 0.0
    for i, j in pairs:
        dot = (10.0 / k) * h[i] @ h[j]
        w = len(pairs) / n1 if s[i, j] else len(pairs) / n0
        total += w * (np.log1p(np.exp(dot)) - s[i, j] * dot)
        weights += w
    return total / weights


@pytest.mark.parametrize("step", [0, 600])
def test_hashnet_matches_numpy_transcription(step):
    rng = np.random.default_rng(1)
    z, labels = rng.normal(size=(7, 12)), np.eye(3)[[0, 1, 2, 0, 0, 1, 2]]
    loss, _ = HashNet(12, 3).loss(NetOutput(h=torch.tensor(z)), torch.tensor(labels), state(step))
    assert loss.item() == pytest.approx(numpy_hashnet(z, labels, math.sqrt(1 + 0.005 * step)), rel=1e-6)


def test_hashnet_balance_gives_both_pair_kinds_equal_total_weight():
    """With |S|/|S₁| and |S|/|S₀| the loss is ½(mean(similar) + mean(dissimilar)), however rare similar pairs are."""
    torch.manual_seed(2)
    z, labels = torch.randn(12, 8, dtype=torch.float64), one_hot(list(range(6)) * 2, 6).double()
    loss, _ = HashNet(8, 6).loss(NetOutput(h=z), labels, state())
    h = torch.tanh(z)
    dot = (10.0 / 8) * h @ h.T
    s = (labels @ labels.T > 0).double()
    nll = torch.nn.functional.softplus(dot) - s * dot
    off = ~torch.eye(12, dtype=torch.bool)
    expected = 0.5 * (nll[off & (s > 0)].mean() + nll[off & (s == 0)].mean())
    torch.testing.assert_close(loss, expected)


# --- DSH --------------------------------------------------------------------------------------------

def test_dsh_hand_value_and_convention():
    """k = 2, m = 4. Pairs of b0 = (1, 1), b1 = (1, −1) (similar), b2 = (1, 1) (dissimilar to b0 and b1)."""
    b = torch.tensor([[1.0, 1.0], [1.0, -1.0], [1.0, 1.0]])
    labels = one_hot([0, 0, 1], 2)
    loss, parts = DSH(2, 2).loss(NetOutput(h=b), labels, state())
    # D01 = 4 similar → ½·4 = 2; D02 = 0 dissimilar → ½·max(4 − 0, 0) = 2; D12 = 4 dissimilar → 0.
    # Ordered pairs: 2·(2 + 2 + 0) / 6 = 4/3; regulariser is 0 at ±1 codes.
    assert parts["pair"] == pytest.approx(4 / 3)
    assert parts["reg"] == 0.0
    assert loss.item() == pytest.approx(4 / 3)


def test_dsh_regulariser_hand_value():
    b = torch.tensor([[0.5, -2.0], [0.0, 1.0]])
    loss, parts = DSH(2, 1).loss(NetOutput(h=b), torch.ones(2, 1), state())
    # ‖|b|−1‖₁ = 0.5 + 1 = 1.5 and 1 + 0 = 1: mean over pairs of r_i + r_j = 2.5
    assert parts["reg"] == pytest.approx(2.5)
    d = 0.5**2 + 3.0**2
    assert loss.item() == pytest.approx(0.5 * d + 0.01 * 2.5)


def test_dsh_is_zero_in_the_ideal_configuration():
    """Identical ±1 codes within a class and ≥ k/2 differing bits between classes: every term is 0."""
    codes = torch.tensor([[1.0, 1, 1, 1], [1, 1, -1, -1], [-1, -1, 1, 1]])
    classes = [0, 1, 2, 0, 1, 2]
    loss, _ = DSH(4, 3).loss(NetOutput(h=codes[classes]), one_hot(classes, 3), state())
    assert loss.item() == 0.0


def test_dsh_matches_numpy_transcription():
    rng = np.random.default_rng(3)
    b, labels = rng.normal(size=(6, 4)) * 2, np.eye(2)[[0, 1, 1, 0, 0, 1]]
    loss, _ = DSH(4, 2).loss(NetOutput(h=torch.tensor(b)), torch.tensor(labels), state())
    s, n = similarity(labels), len(b)
    total = 0.0
    for i in range(n):
        for j in range(n):
            if i != j:
                d = ((b[i] - b[j]) ** 2).sum()
                y = 1 - s[i, j]  # the paper's convention: y = 0 similar, 1 dissimilar
                reg = np.abs(np.abs(b[i]) - 1).sum() + np.abs(np.abs(b[j]) - 1).sum()
                total += 0.5 * (1 - y) * d + 0.5 * y * max(8.0 - d, 0.0) + 0.01 * reg
    assert loss.item() == pytest.approx(total / (n * (n - 1)), rel=1e-9)


# --- all three ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["dpsh", "hashnet", "dsh"])
@pytest.mark.parametrize("scale", [0.0, 1e-30, 1.0, 1e4, 1e15])
def test_gradients_finite_and_loss_nonnegative(name, scale):
    torch.manual_seed(4)
    raw = (torch.randn(10, 16) * scale).requires_grad_()
    labels = one_hot([0, 1, 2, 3, 4] * 2, 5)
    method = get_method(name)(16, 5)
    method.begin_training(labels)
    st = TrainState(epoch=0, epochs=1, step=3000, steps_per_epoch=100, items=torch.arange(10))
    loss, _ = method.loss(NetOutput(h=raw), labels, st)
    loss.backward()
    assert torch.isfinite(loss) and loss.item() >= 0 and torch.isfinite(raw.grad).all()
