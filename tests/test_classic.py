"""LSH and ITQ: code shapes, ITQ's monotone quantisation loss and PCA, saving, and ITQ > LSH on structured data."""
import numpy as np
import pytest
import torch

from dhash.search.codes import pack_codes
from dhash.errors import DHashError
from dhash.learn.methods import get_method
from dhash.learn.methods.classic import ITQ, LSH, PCARR, ITQParams, LSHParams, itq_rotation, pca


def structured(n=3000, dim=96, classes=10, latent=8, seed=0):
    """Classes as clusters in a ``latent``-dimensional subspace of R^dim, plus isotropic noise."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    basis = np.linalg.qr(rng.standard_normal((dim, latent)))[0]
    centres = 3.0 * rng.standard_normal((classes, latent))
    x = (centres[y] + rng.standard_normal((n, latent))) @ basis.T + 0.5 * rng.standard_normal((n, dim)) + 2.0
    return x.astype(np.float32), np.eye(classes, dtype=np.uint8)[y]


@pytest.mark.parametrize("cls", [LSH, ITQ])
@pytest.mark.parametrize("bits", [8, 12, 33])
def test_codes_have_the_right_shape(cls, bits):
    x, labels = structured(n=400, dim=40)
    method = cls(bits, 10)
    method.fit(x, labels, seed=0)
    values = method.project(torch.from_numpy(x))
    assert values.shape == (400, bits) and values.dtype == torch.float32
    codes = pack_codes(values)
    assert codes.shape == (400, (bits + 7) // 8)
    ones = (values > 0).float().mean(dim=0)
    assert torch.all((ones > 0.05) & (ones < 0.95))  # centred: no constant bits
    assert not cls.trainable and not cls.uses_hash_head


def test_lsh_is_seeded_gaussian_projection():
    x, labels = structured(n=300, dim=30)
    a, b, c = LSH(16, 10), LSH(16, 10), LSH(16, 10)
    a.fit(x, labels, seed=1), b.fit(x, labels, seed=1), c.fit(x, labels, seed=2)
    assert torch.equal(a.projection, b.projection) and not torch.equal(a.projection, c.projection)
    assert torch.allclose(a.mean, torch.from_numpy(x.mean(axis=0)), atol=1e-5)
    raw = LSH(16, 10, LSHParams(centre=False))
    raw.fit(x, labels, seed=1)
    assert torch.all(raw.mean == 0)
    expected = torch.from_numpy(x - x.mean(axis=0)) @ a.projection
    assert torch.allclose(a.project(torch.from_numpy(x)), expected, atol=1e-4)


def test_itq_quantisation_loss_never_increases():
    x, labels = structured()
    method = ITQ(16, 10)
    method.fit(x, labels, seed=0)
    loss = np.array(method.quantisation_loss)
    assert len(loss) == 50
    assert np.all(np.diff(loss) <= 1e-9 * loss[0])
    assert loss[-1] < loss[0]
    rot = method.rotation.double().numpy()
    assert np.allclose(rot @ rot.T, np.eye(16), atol=1e-5)


def test_itq_rotation_step_is_procrustes_optimum():
    """Each iteration's R minimises ‖B − V R‖ for that iteration's B: no other rotation does better."""
    rng = np.random.default_rng(0)
    v = rng.standard_normal((500, 6)) * np.arange(1, 7)
    rot5, _ = itq_rotation(v, iterations=5, seed=0)
    rot6, losses = itq_rotation(v, iterations=6, seed=0)
    b = np.where(v @ rot5 > 0, 1.0, -1.0)  # the B of iteration 6
    assert losses[-1] == pytest.approx(np.square(b - v @ rot6).sum())
    for _ in range(50):
        q = np.linalg.qr(rng.standard_normal((6, 6)))[0]
        assert np.square(b - v @ q).sum() >= losses[-1] - 1e-9


def test_itq_pca_matches_sklearn():
    decomposition = pytest.importorskip("sklearn.decomposition")
    x, _ = structured(n=800, dim=30)
    mean, directions = pca(x, 5)
    reference = decomposition.PCA(5).fit(x)
    assert np.allclose(mean, reference.mean_, atol=1e-4)
    # same subspace, same order (up to the sign of each direction)
    assert np.allclose(np.abs(np.sum(directions * reference.components_.T, axis=0)), 1, atol=1e-4)


def test_itq_beats_lsh_on_structured_data():
    from dhash.evaluate.metrics import mean_average_precision

    x, labels = structured()
    q, db = slice(0, 500), slice(500, None)
    scores = {}
    for cls in (LSH, ITQ):
        method = cls(16, 10)
        method.fit(x[db], labels[db], seed=0)
        codes = pack_codes(method.project(torch.from_numpy(x)))
        scores[cls.name] = mean_average_precision(codes[q], codes[db], labels[q], labels[db], 16)
    assert scores["itq"] > scores["lsh"] + 0.1, scores


def test_fitted_buffers_save_and_load():
    x, labels = structured(n=300, dim=24)
    for name in ("lsh", "itq"):
        method = get_method(name)(8, 10)
        method.fit(x, labels, seed=0)
        loaded = get_method(name)(8, 10)
        loaded.load_state_dict(method.state_dict())  # buffers resized to the fitted feature size
        assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), method.state_dict().values()))
        assert torch.allclose(loaded.project(torch.from_numpy(x)), method.project(torch.from_numpy(x)), atol=1e-5)


def test_errors_are_one_line_dhash_errors():
    x, labels = structured(n=100, dim=10)
    with pytest.raises(DHashError, match="not been fitted"):
        ITQ(8, 10).project(torch.from_numpy(x))
    with pytest.raises(DHashError, match="at least 16-dimensional"):
        ITQ(16, 10).fit(x, labels, seed=0)
    method = LSH(8, 10)
    method.fit(x, labels, seed=0)
    with pytest.raises(DHashError, match="10-dimensional"):
        method.project(torch.zeros(3, 12))
    assert ITQParams().iterations == 50


def test_pca_rr_is_pca_then_the_seeded_random_rotation():
    x, labels = structured()
    method = PCARR(16, 10)
    method.fit(x, labels, seed=3)
    assert method.quantisation_loss == []  # no ITQ iterations
    mean, directions = pca(x, 16)
    rot, _ = itq_rotation(np.zeros((1, 16)), iterations=0, seed=3)  # the random orthogonal start of ITQ
    expected = ((x - mean) @ directions) @ rot
    assert np.allclose(method.project(torch.from_numpy(x)).double().numpy(), expected, atol=1e-3)
    # ITQ's iterations lower the quantisation loss ‖B − VR‖² below PCA-RR's on the same data and seed
    itq = ITQ(16, 10)
    itq.fit(x, labels, seed=3)
    v = (x - mean) @ directions
    assert itq.quantisation_loss[-1] < np.square(np.where(v @ rot > 0, 1.0, -1.0) - v @ rot).sum()
