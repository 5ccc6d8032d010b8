"""Transforms: shape, dtype and range for every kind of input spec, against plain references."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from dhash.learn.data import build_transform
from dhash.learn.models.spec import InputSpec

GREY28 = InputSpec(size=28, channels=1, mean=(0.286,), std=(0.353,))
RGB32 = InputSpec(size=32, channels=3, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
RGB224 = InputSpec(size=224, channels=3, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
LITE0 = InputSpec(size=224, channels=3, mean=(127 / 255,) * 3, std=(128 / 255,) * 3)  # (x - 127) / 128
SPECS = [GREY28, RGB32, RGB224, LITE0]
RNG = np.random.default_rng(0)
INPUTS = {
    "grey array": RNG.integers(0, 256, (28, 28), dtype=np.uint8),
    "rgb array": RNG.integers(0, 256, (32, 32, 3), dtype=np.uint8),
    "rgb PIL": Image.fromarray(RNG.integers(0, 256, (50, 70, 3), dtype=np.uint8)),
    "grey PIL": Image.fromarray(RNG.integers(0, 256, (40, 30), dtype=np.uint8)),
}


def unnormalise(x: torch.Tensor, spec: InputSpec) -> torch.Tensor:
    return x * torch.tensor(spec.std).view(-1, 1, 1) + torch.tensor(spec.mean).view(-1, 1, 1)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: f"{s.channels}x{s.size}")
@pytest.mark.parametrize("kind", INPUTS)
@pytest.mark.parametrize("train", [False, True])
def test_shape_dtype_range(spec, kind, train):
    x = build_transform(spec, train)(INPUTS[kind])
    assert x.shape == (spec.channels, spec.size, spec.size) and x.dtype == torch.float32
    pixels = unnormalise(x, spec)
    assert pixels.min() >= -1e-5 and pixels.max() <= 1 + 1e-5


def test_eval_same_size_is_plain_normalisation():
    image = INPUTS["grey array"]
    x = build_transform(GREY28, train=False)(image)
    expected = (image.astype(np.float32) / 255 - 0.286) / 0.353
    np.testing.assert_allclose(x[0].numpy(), expected, rtol=1e-6, atol=1e-6)


def test_grey_to_rgb_repeats_and_rgb_to_grey_matches_pil():
    grey = INPUTS["grey array"]
    x = unnormalise(build_transform(InputSpec(28, 3, RGB32.mean, RGB32.std), train=False)(grey), RGB32)
    for c in range(3):
        np.testing.assert_allclose(x[c].numpy(), grey / 255, atol=1e-6)
    rgb = INPUTS["rgb array"]
    spec = InputSpec(32, 1, (0.5,), (0.5,))
    y = unnormalise(build_transform(spec, train=False)(rgb), spec)
    pil_grey = np.asarray(Image.fromarray(rgb).convert("L"), dtype=np.float32) / 255
    np.testing.assert_allclose(y[0].numpy(), pil_grey, atol=1 / 255 + 1e-6)


def test_resize_keeps_aspect_and_centre_crops():
    image = np.zeros((40, 80), np.uint8)  # left half black, right half white
    image[:, 40:] = 255
    x = build_transform(InputSpec(20, 1, (0.0,), (1.0,)), train=False)(image)  # mean 0, std 1: pixels as they are
    # 40×80 → 20×40, centre 20 columns: 10 black then 10 white (the edge column is blended)
    assert torch.allclose(x[0, :, :9], torch.tensor(0.0), atol=1e-6)
    assert torch.allclose(x[0, :, 11:], torch.tensor(1.0), atol=1e-6)
    flat = np.full((7, 9, 3), 100, np.uint8)
    up = unnormalise(build_transform(RGB224, train=False)(flat), RGB224)
    assert torch.allclose(up, torch.tensor(100 / 255), atol=1e-5)


def test_jpeg_file_decodes_reduced_but_not_below_size(tmp_path):
    path = tmp_path / "big.jpg"
    Image.fromarray(np.full((600, 900, 3), 200, np.uint8)).save(path, quality=95)
    with Image.open(path) as image:
        x = unnormalise(build_transform(RGB32, train=False)(image), RGB32)
    assert x.shape == (3, 32, 32) and torch.allclose(x, torch.tensor(200 / 255), atol=2 / 255)


def test_grey_augmentation_is_a_small_shift_without_flip():
    image = INPUTS["grey array"]
    base = build_transform(GREY28, train=False)(image)[0]
    transform = build_transform(GREY28, train=True)
    torch.manual_seed(0)
    seen = set()
    for _ in range(40):
        x = transform(image)[0]
        shifts = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)]
        matches = [d for d in shifts if torch.allclose(x, shifted(base, *d), atol=1e-6)]
        assert matches, "not a shift of at most 2 px with background fill"
        seen.add(matches[0])
    assert len(seen) > 5


def shifted(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """Plain reference: move content by (dy, dx), fill with the normalised value of black."""
    out = torch.full_like(x, (0 - 0.286) / 0.353)
    h, w = x.shape
    source = x[max(-dy, 0) : h - max(dy, 0), max(-dx, 0) : w - max(dx, 0)]
    out[max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = source
    return out


def test_colour_augmentation_crops_and_flips_and_is_seeded():
    image = INPUTS["rgb array"]
    base = build_transform(RGB32, train=False)(image).numpy()
    # plain reference: every 32×32 window of the image reflection-padded by 4, flipped or not
    padded = np.pad(base, ((0, 0), (4, 4), (4, 4)), mode="reflect")
    windows = {(dy, dx, flip): padded[:, dy : dy + 32, dx : dx + 32][:, :, ::-1 if flip else 1]
               for dy in range(9) for dx in range(9) for flip in (False, True)}
    transform = build_transform(RGB32, train=True)
    torch.manual_seed(1)
    first = [transform(image) for _ in range(30)]
    torch.manual_seed(1)
    again = [transform(image) for _ in range(30)]
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    seen = []
    for x in first:
        matches = [key for key, window in windows.items() if np.allclose(x.numpy(), window, atol=1e-6)]
        assert matches, "not a reflection-padded crop of the image"
        seen.append(matches[0])
    assert {flip for _, _, flip in seen} == {False, True} and len({(dy, dx) for dy, dx, _ in seen}) > 5


def test_rejects_non_uint8():
    with pytest.raises(TypeError, match="uint8"):
        build_transform(GREY28, train=False)(np.zeros((28, 28), np.float32))
    with pytest.raises(TypeError, match="H×W×3"):
        build_transform(GREY28, train=False)(np.zeros((28, 28, 4), np.uint8))
