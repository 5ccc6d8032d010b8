"""SDSH (Pidhorskyi et al. 2018): the spring loss against a plain triplet loop, and the rotation search."""
import math

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from dhash.search.codes import pack_codes
from dhash.learn.config import read_config_file, resolve
from dhash.learn.methods import NetOutput, TrainState, get_method
from dhash.learn.methods.rotation import plane_rotation, random_plane, search_rotation
from dhash.learn.methods.sdsh import SDSH, SDSHParams

STATE = TrainState(epoch=0, epochs=1, step=0, steps_per_epoch=1)


def spring_loss(z: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, float]:
    """SDSH's loss and triplet count for outputs ``z`` (unit vectors stay as they are)."""
    loss, parts = SDSH(z.shape[1], labels.shape[1]).loss(NetOutput(h=z), labels, STATE)
    return loss, parts["triplets"]


def reference_spring(z: np.ndarray, labels: np.ndarray) -> float:
    """Average of E = (2√2 − √(4 − Δ))² over every (q, p, n), p sharing a label with q, n none."""
    total, count = 0.0, 0
    for q in range(len(z)):
        for p in range(len(z)):
            for n in range(len(z)):
                if labels[q] @ labels[p] > 0 and labels[q] @ labels[n] == 0:
                    delta = np.sum((z[q] - z[p]) ** 2) - np.sum((z[q] - z[n]) ** 2)
                    total += (2 * math.sqrt(2) - math.sqrt(4 - delta)) ** 2
                    count += 1
    return total / count


@pytest.mark.parametrize("multi_label", [False, True])
def test_spring_loss_matches_triplet_loop(multi_label):
    rng = np.random.default_rng(3)
    h = rng.standard_normal((9, 5))
    labels = np.eye(3)[rng.integers(0, 3, 9)]
    if multi_label:
        labels[rng.random((9, 3)) < 0.3] = 1
    z = h / np.linalg.norm(h, axis=1, keepdims=True)
    out = NetOutput(h=torch.tensor(h, requires_grad=True))
    loss, parts = SDSH(5, 3).loss(out, torch.tensor(labels), STATE)
    assert loss.item() == pytest.approx(reference_spring(z, labels), rel=1e-9)
    loss.backward()
    assert torch.isfinite(out.h.grad).all()
    assert parts["triplets"] > 0


def test_spring_hand_values():
    q = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    labels = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    # p = q and n = −q: Δ = 0 − 4 = −4, E = (2√2 − √8)² = 0 — the only zero of the loss
    assert spring_loss(torch.cat([q, -q]), labels)[0].item() == pytest.approx(0.0, abs=1e-12)
    # n orthogonal to q: triplets (0,0,1) and (1,1,0), each Δ = −2, E = (2√2 − √6)²
    loss, count = spring_loss(torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64), labels)
    assert count == 2 and loss.item() == pytest.approx((2 * math.sqrt(2) - math.sqrt(6)) ** 2)
    # n = q (worst case, Δ = 0 with p = q): E = (2√2 − 2)² ≈ 0.6863, gradient still finite
    h = torch.tensor([[1.0, 0.0], [1.0, 0.0]], dtype=torch.float64, requires_grad=True)
    loss, _ = spring_loss(F.normalize(h, dim=1), labels)
    assert loss.item() == pytest.approx((2 * math.sqrt(2) - 2) ** 2)
    loss.backward()
    assert torch.isfinite(h.grad).all()


def test_no_valid_triplet_gives_zero_with_graph():
    h = torch.randn(4, 3, requires_grad=True)
    loss, parts = SDSH(3, 2).loss(NetOutput(h=h), torch.tensor([[1.0, 0.0]] * 4), STATE)
    loss.backward()
    assert loss.item() == 0.0 and parts["triplets"] == 0 and torch.all(h.grad == 0)


def test_plane_rotation_equals_givens_in_random_basis():
    """The cheap construction equals the authors' Uᵀ G U with U's first two rows p, q."""
    rng = np.random.default_rng(0)
    u, _ = np.linalg.qr(rng.standard_normal((6, 6)))
    u = u.T  # rows orthonormal
    g = np.eye(6)
    c, s = math.cos(0.3), math.sin(0.3)
    g[:2, :2] = [[c, -s], [s, c]]
    assert np.allclose(plane_rotation(u[0], u[1], 0.3), u.T @ g @ u)
    p, q = random_plane(rng, 6)
    assert np.allclose([p @ p, q @ q, p @ q], [1, 1, 0])


def _clustered(n=1500, bits=12, classes=5, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.eye(classes, dtype=np.uint8)[rng.integers(0, classes, n)]
    h = labels @ rng.standard_normal((classes, bits)) + 0.9 * rng.standard_normal((n, bits))
    return h, labels


def test_rotation_search_improves_and_is_deterministic():
    from dhash.evaluate.metrics import mean_average_precision

    h, labels = _clustered()
    rot, report = search_rotation(h, labels, steps=60, queries=200, database=1000, seed=7, threads=1)
    assert np.allclose(rot @ rot.T, np.eye(12), atol=1e-9)
    assert report["map_after_rotation"] >= report["map_before_rotation"]
    assert report["rotation_accepted"] > 0 and report["map_after_rotation"] > report["map_before_rotation"]
    again, report2 = search_rotation(h, labels, steps=60, queries=200, database=1000, seed=7, threads=1)
    assert np.array_equal(rot, again) and report == report2
    other, _ = search_rotation(h, labels, steps=60, queries=200, database=1000, seed=8, threads=1)
    assert not np.allclose(rot, other)
    # the reported mAP is the mAP of sgn(h R) on the seed's query/database subsets
    order = np.random.default_rng(7).permutation(len(h))
    q, db = order[:200], order[200:1200]
    codes = pack_codes(h @ rot)
    value = mean_average_precision(codes[q], codes[db], labels[q], labels[db], 12, top_k=None, ties="stable", threads=1)
    assert value == pytest.approx(report["map_after_rotation"])


def test_post_train_stores_rotation_buffer():
    h, labels = _clustered(n=900, bits=8, classes=3, seed=1)
    params = SDSHParams(rotation_steps=30, rotation_queries=100, rotation_database=800)
    method = SDSH(8, 3, params)
    report = method.post_train(h, labels, seed=0)
    assert report["map_after_rotation"] >= report["map_before_rotation"]
    rot = method.rotation.numpy()
    assert np.allclose(rot @ rot.T, np.eye(8), atol=1e-5) and not np.allclose(rot, np.eye(8))
    x = torch.tensor(h[:50], dtype=torch.float32)
    expected = (x / x.norm(dim=1, keepdim=True)) @ method.rotation
    assert torch.allclose(method.project(x), expected)
    loaded = SDSH(8, 3)
    loaded.load_state_dict(method.state_dict())
    assert torch.equal(loaded.project(x), method.project(x))
    assert SDSH(8, 3, SDSHParams(rotation_steps=0)).post_train(h, labels, seed=0)["rotation_accepted"] == 0


def test_registry_and_defaults(tmp_path):
    assert get_method("sdsh") is SDSH
    config = resolve({"data": "fashion-mnist", "method": "sdsh"})
    assert (config["optimizer"], config["lr"], config["lr_decay"], config["epochs"]) == ("adam", 1e-3, "cosine", 25)
    authors = tmp_path / "sdsh-sgd.toml"  # the docstring's recipe for the authors' SGD
    authors.write_text('optimizer = "sgd"\nlr = 0.07\nmomentum = 0.0\nlr_decay = "step"\nlr_gamma = 0.6667\n')
    config = resolve({"data": "fashion-mnist", "method": "sdsh"}, read_config_file(authors)[0])
    assert (config["optimizer"], config["lr"], config["momentum"], config["lr_decay"]) == ("sgd", 0.07, 0.0, "step")
    assert torch.equal(SDSH(6, 2).rotation, torch.eye(6))


@pytest.mark.parametrize("n, queries, database", [(5000, 2000, 3000), (30000, 2000, 16000), (1000, 500, 500)])
def test_rotation_search_splits_like_the_authors(n, queries, database):
    # the authors: 2,000 queries, then up to 16,000 database items from the rest (not a 1 : 8 split)
    h, labels = _clustered(n)
    _, report = search_rotation(h, labels, steps=1, seed=0, threads=1)
    assert (report["rotation_queries"], report["rotation_database"]) == (queries, database)
