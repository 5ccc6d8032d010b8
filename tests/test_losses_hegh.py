"""HEGH loss (Su et al. 2021, Eq. 1–6): hardness from classifier confidence, γ = 0 reduction to DSH."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from dhash.errors import DHashError
from dhash.learn.methods import NetOutput, TrainState, get_method
from dhash.learn.methods.dsh import DSH, DSHParams
from dhash.learn.methods.hegh import HEGH, HEGHParams, hardness, normalise_per_kind

STATE = TrainState(epoch=0, epochs=1, step=0, steps_per_epoch=1)
FEATURES = HEGHParams(classifier="features")  # logits from the network's head on the backbone features


def one_hot(classes: list[int], c: int) -> torch.Tensor:
    return torch.nn.functional.one_hot(torch.tensor(classes), c).float()


def test_registry_and_paper_defaults():
    assert get_method("hegh") is HEGH
    assert HEGH.needs_classifier and HEGH.default_backbone == "cbam-cnn"
    p = HEGHParams()
    assert (p.gamma, p.margin, p.lam, p.mu) == (1.0, 2.0, 0.01, 1.0)


def test_gamma_zero_reduces_to_the_plain_dsh_pair_loss():
    torch.manual_seed(0)
    b, logits = torch.randn(10, 12), torch.randn(10, 4) * 3
    labels = one_hot([0, 1, 2, 3, 0, 1, 2, 3, 0, 0], 4)
    loss, parts = HEGH(12, 4, HEGHParams(gamma=0.0, classifier="features")).loss(NetOutput(h=b, logits=logits), labels, STATE)
    dsh_loss, dsh_parts = DSH(12, 4, DSHParams(margin=2.0, alpha=0.01)).loss(NetOutput(h=b), labels, STATE)
    assert parts["pair"] == pytest.approx(dsh_parts["pair"], rel=1e-6)
    expected_class = (labels - torch.sigmoid(logits)).pow(2).sum(1).mean()
    torch.testing.assert_close(loss, dsh_loss + expected_class)


def test_hardness_reading_of_eq3():
    """Similar pair: hard when the classifier doubts an image's own class; dissimilar: hard when it is sure of it."""
    labels = one_hot([0, 0, 1], 2)
    probs = torch.tensor([[0.9, 0.2], [0.3, 0.6], [0.7, 0.4]])  # own-class confidences 0.9, 0.3, 0.4
    s = (labels @ labels.T > 0).float()
    p = hardness(probs, labels, s)
    # pair (0, 1) similar: P_0 = 1 − 0.9, P_1 = 1 − 0.3
    assert p[0, 1].item() == pytest.approx(0.1) and p[1, 0].item() == pytest.approx(0.7)
    # pair (0, 2) dissimilar: P_0 = 0.9, P_2 = 0.4
    assert p[0, 2].item() == pytest.approx(0.9) and p[2, 0].item() == pytest.approx(0.4)


def test_multilabel_confidence_is_the_mean_over_own_labels():
    labels = torch.tensor([[1.0, 0, 0], [0, 1, 1], [0, 0, 0]])
    probs = torch.tensor([[0.5, 0.1, 0.8], [0.2, 0.3, 0.4], [0.9, 0.9, 0.9]])
    s = (labels @ labels.T > 0).float()
    p = hardness(probs, labels, s)
    assert p[0, 1].item() == pytest.approx(0.5)  # dissimilar: P = p
    assert p[1, 0].item() == pytest.approx(0.35)  # mean of 0.3 and 0.4
    assert p[2, 0].item() == 0.0  # no labels: confidence 0


def numpy_hegh(b: np.ndarray, logits: np.ndarray, labels: np.ndarray, gamma: float, k: int, normalise: bool) -> float:
    """Eq. 2–6 written out with the hardness reading documented in hegh.py; means over pairs i≠j / images."""
    n = len(b)
    probs = 1 / (1 + np.exp(-logits))
    s = (labels @ labels.T > 0).astype(float)
    conf = np.array([probs[i, np.flatnonzero(labels[i])].mean() for i in range(n)])  # own-label confidence
    big_p = np.where(s > 0, 1 - conf[:, None], conf[:, None])  # big_p[i, j]: hardness of i in pair (i, j)
    weight = (big_p * big_p.T) ** gamma
    if normalise:  # each pair kind's weights rescaled to mean 1 over the pairs i != j
        off = ~np.eye(n, dtype=bool)
        for kind in (s > 0, s == 0):
            weight = np.where(kind, weight / weight[kind & off].mean(), weight)
    total = 0.0
    for i in range(n):
        for j in range(n):
            if i == j:
                continue
            d = ((b[i] - b[j]) ** 2).sum()
            y = 1 - s[i, j]
            pair = 0.5 * (1 - y) * d + 0.5 * y * max(2 * k - d, 0)
            reg = np.abs(np.abs(b[i]) - 1).sum() + np.abs(np.abs(b[j]) - 1).sum()
            total += weight[i, j] * pair + 0.01 * reg
    hard = total / (n * (n - 1))
    cls = ((labels - probs) ** 2).sum(1).mean()
    return hard + 1.0 * cls


@pytest.mark.parametrize("normalise", [True, False])
@pytest.mark.parametrize("gamma", [0.0, 1.0, 2.5])
def test_hegh_matches_numpy_transcription(gamma, normalise):
    rng = np.random.default_rng(1)
    b, logits = rng.normal(size=(7, 6)), rng.normal(size=(7, 3)) * 2
    labels = np.eye(3)[[0, 1, 2, 0, 1, 1, 2]]
    loss, _ = HEGH(6, 3, HEGHParams(gamma=gamma, normalise=normalise, classifier="features")).loss(
        NetOutput(h=torch.tensor(b), logits=torch.tensor(logits)), torch.tensor(labels), STATE
    )
    assert loss.item() == pytest.approx(numpy_hegh(b, logits, labels, gamma, 6, normalise), rel=1e-6)


def test_hard_pairs_weigh_more_than_easy_pairs():
    """Eq. 4 as printed: same codes, same pair loss, but the pair the classifier gets wrong dominates once γ > 0."""
    printed = HEGHParams(normalise=False, classifier="features")
    b = torch.tensor([[1.0, 1.0], [-1.0, 1.0]])  # a similar pair at distance 4
    labels = one_hot([0, 0], 2)
    confident = torch.tensor([[4.0, -4.0], [4.0, -4.0]])
    unsure = torch.tensor([[-4.0, 4.0], [-4.0, 4.0]])
    _, easy = HEGH(2, 2, printed).loss(NetOutput(h=b, logits=confident), labels, STATE)
    _, hard = HEGH(2, 2, printed).loss(NetOutput(h=b, logits=unsure), labels, STATE)
    assert hard["pair"] > 50 * easy["pair"]
    # a dissimilar pair inside the margin is hard when the classifier is sure of both images
    b, labels = torch.tensor([[1.0, 1.0], [1.0, 1.0]]), one_hot([0, 1], 2)
    sure, doubtful = torch.tensor([[4.0, -4.0], [-4.0, 4.0]]), torch.tensor([[-4.0, 4.0], [4.0, -4.0]])
    _, hard = HEGH(2, 2, printed).loss(NetOutput(h=b, logits=sure), labels, STATE)
    _, easy = HEGH(2, 2, printed).loss(NetOutput(h=b, logits=doubtful), labels, STATE)
    assert hard["pair"] > 50 * easy["pair"]


def test_normalised_weights_keep_each_pair_kind_at_mean_one_and_favour_hard_pairs():
    torch.manual_seed(5)
    b, logits = torch.randn(8, 4), torch.randn(8, 2) * 3
    labels = one_hot([0, 1] * 4, 2)
    s = (labels @ labels.T > 0).float()
    off = ~torch.eye(8, dtype=torch.bool)
    raw = hardness(torch.sigmoid(logits), labels, s)
    raw = raw * raw.T
    w = normalise_per_kind(raw, s, off.float())
    for kind in (s > 0, s == 0):
        assert w[kind & off].mean().item() == pytest.approx(1.0)
        order = raw[kind & off].argsort()
        assert torch.equal(w[kind & off].argsort(), order)  # same ranking: harder pairs weigh more
    assert (w[~off] == 0).all()


def test_hardness_weight_carries_no_gradient_to_the_classifier():
    torch.manual_seed(2)
    b = torch.randn(6, 8, requires_grad=True)
    logits = torch.randn(6, 3, requires_grad=True)
    labels = one_hot([0, 1, 2, 0, 1, 2], 3)
    loss, _ = HEGH(8, 3, FEATURES).loss(NetOutput(h=b, logits=logits), labels, STATE)
    (grad_logits,) = torch.autograd.grad(loss, logits)
    cls = (labels - torch.sigmoid(logits)).pow(2).sum(1).mean()
    (expected,) = torch.autograd.grad(cls, logits)
    torch.testing.assert_close(grad_logits, expected)


@pytest.mark.parametrize("scale", [0.0, 1e-30, 1.0, 1e4, 1e15])
def test_gradients_finite_and_loss_nonnegative(scale):
    torch.manual_seed(3)
    b = (torch.randn(8, 16) * scale).requires_grad_()
    logits = (torch.randn(8, 4) * scale).requires_grad_()
    labels = one_hot([0, 1, 2, 3] * 2, 4)
    loss, _ = HEGH(16, 4, FEATURES).loss(NetOutput(h=b, logits=logits), labels, STATE)
    loss.backward()
    assert torch.isfinite(loss) and loss.item() >= 0
    assert torch.isfinite(b.grad).all() and torch.isfinite(logits.grad).all()


def test_zero_in_the_ideal_configuration():
    codes = torch.tensor([[1.0, 1, 1, 1], [1, 1, -1, -1], [-1, -1, 1, 1]])
    classes = [0, 1, 2, 2, 1, 0]
    labels = one_hot(classes, 3)
    logits = (labels * 2 - 1) * 100  # the classifier is certain and right: σ = 1 / 0 exactly
    loss, _ = HEGH(4, 3, FEATURES).loss(NetOutput(h=codes[classes], logits=logits), labels, STATE)
    assert loss.item() == 0.0


def test_missing_classifier_head_is_a_clear_error():
    with pytest.raises(DHashError, match="classification head"):
        HEGH(4, 2, FEATURES).loss(NetOutput(h=torch.zeros(2, 4)), one_hot([0, 1], 2), STATE)


def test_paper_placement_is_the_default_and_reads_the_codes():
    """Section 3.1: the classification layer sits on the binary-like outputs b (no head on the features)."""
    from dhash.learn.runtime import build_network

    assert HEGHParams().classifier == "codes"
    net = build_network("small-cnn", {}, 8, HEGH, 3)
    assert net.classifier is None
    assert build_network("small-cnn", {}, 8, HEGH, 3, params=FEATURES).classifier is not None
    rng = np.random.default_rng(4)
    b, labels = rng.normal(size=(7, 6)), np.eye(3)[[0, 1, 2, 0, 1, 1, 2]]
    method = HEGH(6, 3)
    w, c = method.readout.weight.detach().numpy(), method.readout.bias.detach().numpy()
    loss, _ = method.loss(NetOutput(h=torch.tensor(b, dtype=torch.float32)), torch.tensor(labels), STATE)
    expected = numpy_hegh(b, b @ w.T + c, labels, 1.0, 6, False)
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_with_the_paper_placement_the_classification_loss_reaches_the_codes():
    torch.manual_seed(6)
    labels = one_hot([0, 1, 2, 0, 1, 2], 3)
    b = torch.randn(6, 8, requires_grad=True)
    method = HEGH(8, 3, HEGHParams(mu=1.0, gamma=0.0))
    loss, _ = method.loss(NetOutput(h=b), labels, STATE)
    no_class = HEGH(8, 3, HEGHParams(mu=0.0, gamma=0.0))
    no_class.load_state_dict(method.state_dict())
    loss0, _ = no_class.loss(NetOutput(h=b), labels, STATE)
    (g,), (g0,) = torch.autograd.grad(loss, b), torch.autograd.grad(loss0, b)
    cls = (labels - torch.sigmoid(method.readout(b))).pow(2).sum(1).mean()
    (expected,) = torch.autograd.grad(cls, b)
    torch.testing.assert_close(g - g0, expected)
    assert expected.abs().sum() > 0


def test_unknown_placement_is_a_clear_error():
    with pytest.raises(DHashError, match="classifier=head"):
        HEGH(4, 2, HEGHParams(classifier="head"))
