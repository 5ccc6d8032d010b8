"""Backbone registry, output shapes, the hash network, and HEGH's CBAM network."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from dhash.errors import DHashError
from dhash.learn.methods.base import NetOutput
from dhash.learn.models import HashNetwork, backbone_names, backbone_options, build_backbone
from dhash.learn.models.cbam_cnn import CBAM, ChannelAttention, SpatialAttention

EXPECTED_FEATURES = {"small-cnn": 256, "cbam-cnn": 256, "alexnet": 4096, "vgg16": 4096, "resnet18": 512,
                     "resnet50": 2048, "efficientnet-lite0": 1280, "pixels": 784, "features": 64}
IMAGE_BACKBONES = [n for n in backbone_names() if n != "features"]


def test_features_backbone_passes_vectors_through():
    backbone = build_backbone("features", dim=64)
    x = torch.randn(5, 64, dtype=torch.float64)
    assert backbone.out_features == 64 and backbone.input_spec.channels == 0
    assert torch.equal(backbone(x), x.float())
    with pytest.raises(DHashError, match="needs dim"):
        build_backbone("features")


@pytest.mark.parametrize("name", IMAGE_BACKBONES)
def test_backbone_output_shape(name):
    torch.manual_seed(0)
    backbone = build_backbone(name).eval()
    spec = backbone.input_spec
    batch = 1 if spec.size > 64 else 3  # keep VGG-16 at 224 px cheap
    with torch.no_grad():
        out = backbone(torch.randn(batch, spec.channels, spec.size, spec.size))
    assert backbone.out_features == EXPECTED_FEATURES[name]
    assert out.shape == (batch, backbone.out_features)
    assert len(spec.mean) == len(spec.std) == spec.channels
    assert torch.isfinite(out).all()


def test_registry_lists_every_contract_name():
    assert set(backbone_names()) == set(EXPECTED_FEATURES)


@pytest.mark.parametrize("name,options,channels,size", [
    ("small-cnn", {"in_channels": 3, "size": 32}, 3, 32),
    ("small-cnn", {"in_channels": 1, "size": 28, "width": 48}, 1, 28),
    ("cbam-cnn", {"in_channels": 3, "size": 32}, 3, 32),
    ("pixels", {"in_channels": 3, "size": 32}, 3, 32),
])
def test_small_networks_take_rgb_32px(name, options, channels, size):
    backbone = build_backbone(name, **options)
    assert (backbone.input_spec.size, backbone.input_spec.channels) == (size, channels)
    assert backbone(torch.randn(2, channels, size, size)).shape == (2, backbone.out_features)


def test_small_cnn_width_sets_the_channels():
    widths = [m.out_channels for m in build_backbone("small-cnn", width=48).modules() if isinstance(m, torch.nn.Conv2d)]
    assert widths == [48, 96, 192]


def test_default_small_spec_is_fashion_mnist():
    spec = build_backbone("small-cnn").input_spec
    assert (spec.size, spec.channels, spec.mean, spec.std) == (28, 1, (0.286,), (0.353,))
    assert build_backbone("efficientnet-lite0").input_spec.mean == (127 / 255,) * 3


def test_pixels_is_the_normalised_image_flattened():
    backbone = build_backbone("pixels")
    x = torch.randn(2, 1, 28, 28)
    assert torch.equal(backbone(x), x.reshape(2, 784))
    assert not list(backbone.parameters())


@pytest.mark.parametrize("call,needle", [
    (lambda: build_backbone("lenet"), "choose from: small-cnn"),
    (lambda: build_backbone("small-cnn", depth=3), "options: in_channels=1"),
    (lambda: build_backbone("small-cnn", pretrained=True), "no pretrained weights"),
    (lambda: build_backbone("cbam-cnn", cbam="perhaps"), "expected true or false"),
    (lambda: build_backbone("small-cnn", in_channels=2), "in_channels must be 1"),
    (lambda: build_backbone("small-cnn", size=4), "at least 8 px"),
])
def test_bad_names_and_options_are_one_line_errors(call, needle):
    with pytest.raises(DHashError, match=needle) as err:
        call()
    assert "\n" not in str(err.value)


def test_imagenet_backbones_have_a_fixed_input():
    """Only the small networks take size / channel hints from the data; the ImageNet ones always see 224 px RGB."""
    for name in ("alexnet", "vgg16", "resnet18", "resnet50"):
        assert backbone_options(name) == {}
    assert backbone_options("efficientnet-lite0") == {"imagenet_head": False, "input_size": 224}
    assert backbone_options("small-cnn").keys() >= {"in_channels", "size"}


def test_string_options_from_the_cli_are_converted():
    assert len(build_backbone("cbam-cnn", cbam="false").cbam) == 0
    assert build_backbone("small-cnn", size="32").input_spec.size == 32
    assert backbone_options("cbam-cnn")["cbam"] is True


def test_weights_file_for_a_small_network(tmp_path):
    torch.manual_seed(0)
    trained = build_backbone("small-cnn")
    path = tmp_path / "small.pt"
    torch.save(trained.state_dict(), path)
    loaded = build_backbone("small-cnn", weights=str(path)).eval()
    x = torch.randn(2, 1, 28, 28)
    assert torch.equal(loaded(x), trained.eval()(x))
    with pytest.raises(DHashError, match="do not match"):
        build_backbone("small-cnn", in_channels=3, weights=str(path))
    with pytest.raises(DHashError, match="not found"):
        build_backbone("small-cnn", weights=str(tmp_path / "missing.pt"))
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(DHashError, match="junk.pt: not a readable"):
        build_backbone("small-cnn", weights=str(tmp_path / "junk.pt"))


def test_hash_network_outputs_and_heads():
    torch.manual_seed(0)
    net = HashNetwork(build_backbone("small-cnn"), bits=24, num_classes=10)
    x = torch.randn(5, 1, 28, 28)
    out = net.eval()(x)
    features = net.backbone(x)
    assert isinstance(out, NetOutput)
    assert out.h.shape == (5, 24) and out.logits.shape == (5, 10) and features.shape == (5, 256)
    assert (out.h < 0).any()  # raw linear output, no activation
    assert torch.allclose(out.h, features @ net.hash_head.weight.T + net.hash_head.bias)
    head, body = list(net.head_parameters()), list(net.backbone_parameters())
    assert len(head) == 4
    assert {id(p) for p in head} | {id(p) for p in body} == {id(p) for p in net.parameters()}
    assert not {id(p) for p in head} & {id(p) for p in body}
    assert net.input_spec == net.backbone.input_spec


def test_hash_network_without_heads_returns_features():
    net = HashNetwork(build_backbone("pixels"), bits=32, hash_head=False)
    x = torch.randn(3, 1, 28, 28)
    out = net(x)
    assert torch.equal(out.h, x.reshape(3, -1)) and out.logits is None
    assert not list(net.parameters())


def test_cbam_attention_maps_in_unit_interval_and_shaped():
    torch.manual_seed(0)
    backbone = build_backbone("cbam-cnn")
    features, maps = backbone(torch.randn(4, 1, 28, 28) * 3, return_attention=True)
    assert features.shape == (4, 256)
    assert len(maps) == 3  # three stacked CBAM modules after layer 2
    for channel, spatial in maps:
        assert channel.shape == (4, 32, 1, 1) and spatial.shape == (4, 1, 14, 14)
        for m in (channel, spatial):
            assert m.min() >= 0 and m.max() <= 1 and m.std() > 0


def test_cbam_matches_plain_reference():
    torch.manual_seed(0)
    x = torch.randn(2, 32, 6, 5)
    cbam = CBAM(32)
    (w1, b1), (w2, b2) = [(c.weight, c.bias) for c in (cbam.channel.mlp[0], cbam.channel.mlp[2])]
    mlp = lambda v: F.relu(v @ w1.T + b1) @ w2.T + b2  # noqa: E731 - shared MLP, reduction 16: 32 → 2 → 32
    assert w1.shape == (2, 32)
    mc = torch.sigmoid(mlp(x.mean((2, 3))) + mlp(x.flatten(2).max(2).values))[:, :, None, None]
    y = x * mc
    pooled = torch.stack([y.mean(1), y.max(1).values], 1)
    ms = torch.sigmoid(F.conv2d(pooled, cbam.spatial.conv.weight, cbam.spatial.conv.bias, padding=3))
    assert cbam.spatial.conv.weight.shape == (1, 2, 7, 7)
    out, mc_, ms_ = cbam(x)
    assert torch.allclose(mc_, mc, atol=1e-6) and torch.allclose(ms_, ms, atol=1e-6)
    assert torch.allclose(out, y * ms, atol=1e-6)
    assert isinstance(cbam.channel, ChannelAttention) and isinstance(cbam.spatial, SpatialAttention)


def test_cbam_ablation_has_no_attention_and_fewer_parameters():
    with_cbam, without = build_backbone("cbam-cnn"), build_backbone("cbam-cnn", cbam=False)
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    per_module = 2 * 32 * 2 + 2 + 32 + 2 * 49 + 1  # shared MLP (with biases) + 7×7 conv
    assert count(with_cbam) - count(without) == 3 * per_module
    features, maps = without(torch.randn(2, 1, 28, 28), return_attention=True)
    assert maps == [] and features.shape == (2, 256)


def test_cbam_network_trains_a_step():
    torch.manual_seed(0)
    net = HashNetwork(build_backbone("cbam-cnn"), bits=12, num_classes=3)
    x, y = torch.randn(8, 1, 28, 28), torch.randint(0, 3, (8,))
    loss = F.cross_entropy(net(x).logits, y)
    loss.backward()
    first_cbam = net.backbone.cbam[0].spatial.conv.weight.grad
    assert first_cbam is not None and first_cbam.abs().sum() > 0
