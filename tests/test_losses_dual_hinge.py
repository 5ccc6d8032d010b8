"""Dual hinge loss (Yan et al. 2019, dhash's design): derivation, hand value, hard/easy shape, gradients."""
import math

import numpy as np
import pytest
import torch

from dhash.errors import DHashError
from dhash.learn.methods import NetOutput, TrainState, get_method, parse_params
from dhash.learn.methods.dual_hinge import DualHinge, DualHingeParams, dual_hinge

STATE = TrainState(epoch=1, epochs=2, step=100, steps_per_epoch=100)  # past the centred start: raw distances
START = TrainState(epoch=0, epochs=2, step=0, steps_per_epoch=100)  # the first step: centred distances


def symmetric_kl_gamma(shape: float, scale_p: float, scale_q: float) -> float:
    """Symmetric KL of Γ(shape, scale_p) and Γ(shape, scale_q) by numerical integration (no closed form)."""
    stats = pytest.importorskip("scipy.stats")
    integrate = pytest.importorskip("scipy.integrate")
    p, q = stats.gamma(shape, scale=scale_p), stats.gamma(shape, scale=scale_q)

    def integrand(x: float) -> float:
        lp, lq = p.logpdf(x), q.logpdf(x)
        return (math.exp(lp) - math.exp(lq)) * (lp - lq)

    return integrate.quad(integrand, 0, np.inf, limit=200)[0]


@pytest.mark.parametrize("z", [-3.0, -0.5, 0.0, 1.0, 2.5])
@pytest.mark.parametrize("shape", [1.0, 2.5])
def test_per_pair_loss_is_symmetric_kl_of_gammas(z, shape):
    theta0 = 0.7  # cancels out
    expected = symmetric_kl_gamma(shape, theta0 * (1 + math.exp(z)), theta0)
    assert dual_hinge(torch.tensor(z, dtype=torch.float64), shape).item() == pytest.approx(expected, rel=1e-5, abs=1e-9)


def test_per_pair_loss_hand_values():
    z = torch.tensor([0.0, math.log(3.0)], dtype=torch.float64)
    # z = 0: r = 2, r + 1/r − 2 = 1/2;  z = ln 3: r = 4, 4 + 1/4 − 2 = 9/4
    assert dual_hinge(z, 2.0).tolist() == pytest.approx([1.0, 4.5])


def _pair_loss(k, *, u_i, u_j, s, mean=None):
    """Per-pair loss written out by hand from the docstring (r = 1 + e^z, ℓ = k (r + 1/r − 2)); ``mean``:
    the batch's mean code, taken off both codes (centred)."""
    p = DualHingeParams()
    mean = mean or [0.0] * len(u_i)
    d = (1 - sum((a - m) * (b - m) for a, b, m in zip(u_i, u_j, mean)) / len(u_i)) / 2
    z = p.slope * (d - p.margin_similar) if s else p.slope * (p.margin_dissimilar - d)
    r = 1 + math.exp(z)
    return k * (r + 1 / r - 2)


@pytest.mark.parametrize("centre", [False, True])
def test_batch_loss_hand_value(centre):
    h = torch.tensor([[0.5, -1.0], [0.3, -0.2], [-0.8, 1.5]], dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([[1, 0], [1, 0], [0, 1]], dtype=torch.float64)
    u = [[math.tanh(v) for v in row] for row in h.tolist()]
    mean = [sum(col) / 3 for col in zip(*u)] if centre else None
    l01 = _pair_loss(1.0, u_i=u[0], u_j=u[1], s=True, mean=mean)
    l02 = _pair_loss(1.0, u_i=u[0], u_j=u[2], s=False, mean=mean)
    l12 = _pair_loss(1.0, u_i=u[1], u_j=u[2], s=False, mean=mean)
    expected = (l01 + (l02 + l12) / 2) / 2  # similar and dissimilar pairs weighted equally
    state = START if centre else STATE
    loss, parts = DualHinge(2, 2).loss(NetOutput(h=h), labels, state)
    assert loss.item() == pytest.approx(expected, rel=1e-9)
    assert parts["dual_hinge"] == pytest.approx(expected)
    unbalanced = DualHinge(2, 2, DualHingeParams(balance=False)).loss(NetOutput(h=h), labels, state)[0]
    assert unbalanced.item() == pytest.approx((2 * l01 + 2 * l02 + 2 * l12) / 6, rel=1e-9)


def test_centred_codes_give_a_constant_bit_nothing():
    """A bit that is the same for every image (the dead bits of docs/experiments.md): centred, its value
    changes neither the loss nor the other bits' gradients; uncentred, pushing it to ±1 pays off."""
    torch.manual_seed(0)
    labels = torch.nn.functional.one_hot(torch.arange(8) % 2, 2).double()
    rest = torch.randn(8, 3, dtype=torch.float64) * 0.1

    def loss_and_grad(constant: float, centre: bool) -> tuple[float, torch.Tensor]:
        h = torch.cat([rest, torch.full((8, 1), constant, dtype=torch.float64)], 1).requires_grad_()
        loss = DualHinge(4, 2).loss(NetOutput(h=h), labels, START if centre else STATE)[0]
        loss.backward()
        return loss.item(), h.grad[:, :3]

    (small, g_small), (large, g_large) = loss_and_grad(0.0, True), loss_and_grad(3.0, True)
    assert large == pytest.approx(small, rel=1e-12) and torch.allclose(g_large, g_small)
    assert loss_and_grad(3.0, False)[0] < 0.5 * loss_and_grad(0.0, False)[0]


def test_centre_steps_counts_optimisation_steps_from_the_first():
    torch.manual_seed(0)
    h = torch.randn(8, 6, dtype=torch.float64)
    labels = torch.nn.functional.one_hot(torch.arange(8) % 3, 3).double()

    def loss(centre_steps: int, step: int) -> float:
        state = TrainState(epoch=step // 3, epochs=8, step=step, steps_per_epoch=3)
        method = DualHinge(6, 3, DualHingeParams(centre_steps=centre_steps))
        return method.loss(NetOutput(h=h), labels, state)[0].item()

    raw, centred = loss(0, 0), loss(1, 0)
    assert raw != pytest.approx(centred)
    assert [loss(2, s) for s in range(4)] == pytest.approx([centred, centred, raw, raw])
    assert [loss(DualHingeParams().centre_steps, s) for s in (0, 19, 20)] == pytest.approx([centred, centred, raw])
    with pytest.raises(DHashError, match="centre_steps=-1"):
        DualHinge(6, 3, DualHingeParams(centre_steps=-1))


def _loss_at_distances(similar: bool, distances: np.ndarray, params: DualHingeParams) -> np.ndarray:
    """The method's loss on 1-bit, 2-item batches whose relaxed codes are exactly ``d`` apart."""
    method = DualHinge(1, 2, params)
    labels = torch.tensor([[1.0, 0.0], [1.0, 0.0] if similar else [0.0, 1.0]], dtype=torch.float64)
    u0 = 1 - 1e-9
    values = []
    for d in np.clip(distances, 1e-6, 1 - 1e-6):  # d = (1 − u0·u1) / 2
        h = torch.tensor([[math.atanh(u0)], [math.atanh((1 - 2 * d) / u0)]], dtype=torch.float64)
        values.append(method.loss(NetOutput(h=h), labels, STATE)[0].item())
    return np.array(values)


@pytest.mark.parametrize("similar", [True, False])
def test_hard_pairs_grow_exponentially_easy_pairs_bounded(similar):
    p = DualHingeParams(margin_similar=0.1, margin_dissimilar=0.5, slope=20.0, shape=1.0)
    margin = p.margin_similar if similar else p.margin_dissimilar
    sign = 1.0 if similar else -1.0  # hard direction: away from 0 for similar pairs, towards 0 for dissimilar
    # hard region: z = a·(violation) from 3 to 6 → log-loss grows linearly with slope a (1 + σ(−z)) ≈ a
    hard = margin + sign * np.linspace(3, 6, 7) / p.slope
    loss_hard = _loss_at_distances(similar, hard, p)
    steps = np.diff(np.log(loss_hard)) / np.abs(np.diff(hard))
    assert np.all(steps > p.slope) and np.all(steps < 1.06 * p.slope)
    assert loss_hard[-1] / loss_hard[0] > math.exp(0.95 * p.slope * abs(hard[-1] - hard[0]))
    # easy region: everything on the right side of the margin costs less than k/2 and decays to ~0
    easy = np.linspace(0.0, margin, 11) if similar else np.linspace(margin, 1.0, 11)
    loss_easy = _loss_at_distances(similar, easy, p)
    assert np.all(loss_easy <= p.shape / 2 + 1e-6)
    far = loss_easy[0] if similar else loss_easy[-1]
    assert far < 0.02 * p.shape
    assert np.all(np.diff(loss_easy) * sign >= 0)  # monotone: larger violation, larger loss


def test_gradients_finite_and_point_the_right_way():
    torch.manual_seed(0)
    h = (torch.randn(12, 16, dtype=torch.float64) * 20).requires_grad_()  # saturated tanh, extreme distances
    labels = torch.nn.functional.one_hot(torch.arange(12) % 3, 3).double()
    loss, _ = DualHinge(16, 3).loss(NetOutput(h=h), labels, STATE)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(h.grad).all()
    # a far-apart similar pair: a small step along −grad brings it closer
    h2 = torch.tensor([[0.3, 0.2, -0.1, 0.4], [-0.3, -0.2, 0.1, -0.4]], dtype=torch.float64, requires_grad=True)
    same = torch.tensor([[1.0], [1.0]], dtype=torch.float64)
    method = DualHinge(4, 1)
    method.loss(NetOutput(h=h2), same, STATE)[0].backward()
    closer = (h2 - 0.01 * h2.grad).detach()
    assert method.loss(NetOutput(h=closer), same, STATE)[0] < method.loss(NetOutput(h=h2.detach()), same, STATE)[0]


def test_registry_and_params():
    assert get_method("dual-hinge") is DualHinge
    params = parse_params(DualHinge, {"margin-similar": "0.2", "slope": "5"})
    assert params.margin_similar == 0.2 and params.slope == 5.0
    assert DualHinge.trainable and DualHinge.uses_hash_head and not DualHinge.needs_classifier
