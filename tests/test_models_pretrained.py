"""Pretrained weights: torchvision's from the hub cache or a file (never downloaded), Lite0's from its package."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision
from PIL import Image

from dhash.errors import DHashError
from dhash.learn.models import build_backbone
from dhash.learn.models.efficientnet_lite import SameConv2d, package_weights_file, rename_lukemelas

RESNET18_FILE = "resnet18-f37072fd.pth"


@pytest.fixture
def hub_dir(tmp_path, monkeypatch):
    """An empty torch hub cache, whatever this machine has cached."""
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    return tmp_path / "hub"


@pytest.mark.parametrize("name,file", [("alexnet", "alexnet-owt-7be5be79.pth"), ("vgg16", "vgg16-397923af.pth"),
                                       ("resnet18", RESNET18_FILE), ("resnet50", "resnet50-11ad3fa6.pth")])
def test_missing_torchvision_weights_name_file_url_and_folder(hub_dir, name, file):
    with pytest.raises(DHashError) as err:
        build_backbone(name, pretrained=True)
    message = str(err.value)
    assert "\n" not in message
    assert f"https://download.pytorch.org/models/{file}" in message
    assert f"put {file} in {hub_dir / 'checkpoints'}" in message


def _reference_resnet18(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torchvision.models.resnet18(weights=None).eval()


def test_torchvision_weights_from_file_and_from_cache(hub_dir, tmp_path):
    reference = _reference_resnet18(1)
    path = tmp_path / "mine.pth"
    torch.save(reference.state_dict(), path)
    (hub_dir / "checkpoints").mkdir(parents=True)
    torch.save(reference.state_dict(), hub_dir / "checkpoints" / RESNET18_FILE)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        reference.fc = torch.nn.Identity()
        expected = reference(x)
        for backbone in (build_backbone("resnet18", weights=str(path)), build_backbone("resnet18", pretrained=True)):
            assert torch.allclose(backbone.eval()(x), expected, atol=1e-5)
        assert not torch.allclose(build_backbone("resnet18").eval()(x), expected, atol=1e-3)


def test_torchvision_weights_of_another_network_are_refused(tmp_path):
    path = tmp_path / "alexnet.pth"
    torch.save(torchvision.models.alexnet(weights=None).state_dict(), path)
    with pytest.raises(DHashError, match="alexnet.pth: weights do not match"):
        build_backbone("resnet18", weights=str(path))


@pytest.mark.parametrize("size,kernel,pads", [(8, 3, (0, 1)), (7, 3, (1, 1)), (8, 5, (1, 2)), (224, 3, (0, 1))])
def test_same_padding_is_tensorflows(size, kernel, pads):
    """TF "SAME" with stride 2: output ceil(size/2), the odd padding pixel goes after (bottom/right)."""
    torch.manual_seed(0)
    conv = SameConv2d(2, 3, kernel, stride=2)
    x = torch.randn(1, 2, size, size)
    expected = F.conv2d(F.pad(x, pads * 2), conv.weight, stride=2)
    out = conv(x)
    assert out.shape[-1] == -(-size // 2)
    assert torch.allclose(out, expected, atol=1e-5)


def test_lite0_package_weights_map_onto_every_parameter():
    state = torch.load(package_weights_file(), map_location="cpu", weights_only=True)
    model = build_backbone("efficientnet-lite0", imagenet_head=True)
    assert set(rename_lukemelas(state)) == set(model.state_dict())
    assert sum(p.numel() for p in model.parameters()) == 4_652_008  # EfficientNet-Lite0: 4.65 M
    pretrained = build_backbone("efficientnet-lite0", pretrained=True)
    assert pretrained.classifier is None and pretrained.out_features == 1280


@pytest.fixture(scope="module")
def lite0():
    return build_backbone("efficientnet-lite0", pretrained=True, imagenet_head=True).eval()


def _photo(name: str, spec) -> torch.Tensor:
    """Central crop (224/256 of the short side, as in TF's evaluation), bicubic resize, Lite normalisation."""
    from sklearn.datasets import load_sample_image

    img = Image.fromarray(load_sample_image(name))
    w, h = img.size
    c = int(min(w, h) * 224 / 256)
    img = img.crop(((w - c) // 2, (h - c) // 2, (w + c) // 2, (h + c) // 2)).resize((spec.size, spec.size), Image.BICUBIC)
    x = torch.from_numpy(np.array(img, dtype=np.float32) / 255).permute(2, 0, 1)[None]
    return (x - torch.tensor(spec.mean)[:, None, None]) / torch.tensor(spec.std)[:, None, None]


@pytest.mark.parametrize("photo,top1,plausible,at_least", [
    ("china.jpg", 698, {698: "palace", 663: "monastery", 832: "stupa", 442: "bell cote", 483: "castle"}, 3),
    ("flower.jpg", 985, {985: "daisy"}, 1),
])
def test_lite0_classifies_real_photos(lite0, photo, top1, plausible, at_least):
    """scikit-learn's china.jpg is a Chinese temple; flower.jpg a daisy-like flower."""
    categories = torchvision.models.AlexNet_Weights.IMAGENET1K_V1.meta["categories"]
    assert all(categories[i] == label for i, label in plausible.items())
    with torch.no_grad():
        probs = lite0.classify(_photo(photo, lite0.input_spec)).softmax(1)[0]
    top5 = probs.topk(5).indices.tolist()
    assert top5[0] == top1 and probs[top1] > 0.2, [categories[i] for i in top5]
    assert len(set(top5) & set(plausible)) >= at_least, [categories[i] for i in top5]
