"""``--backbone-mode frozen``: cached backbone features (keys, invalidation, corrupt files), frozen training
that leaves the backbone untouched, models of both modes accepted by ``dhash encode`` and ``dhash query
--image``, and the in-memory image cache of fine-tuning. Real PNG files from Fashion-MNIST, 64-px
EfficientNet-Lite0 with its ImageNet weights, a few epochs."""
from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from dhash.cli.main import main
from dhash.learn.data import ImageDataset, build_transform, load_source
from dhash.learn.data.feature_cache import FeatureCache, backbone_digest, item_keys
from dhash.learn.data.preload import preload
from dhash.learn.frozen import backbone_features
from dhash.learn.models import build_backbone
from dhash.learn.runtime import build_network
from dhash.learn.methods import get_method
from dhash.search.codes import read_code_file

SMALL = ["--backbone", "efficientnet-lite0", "--pretrained"]


def dhash(*args, code: int = 0) -> str:
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == code, (result.output, result.exception)
    return result.output


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """48 Fashion-MNIST PNGs in three class folders (trouser, sneaker, bag)."""
    fashion = load_source("fashion-mnist")
    root = tmp_path_factory.mktemp("photos")
    for name, c in (("trouser", 1), ("sneaker", 7), ("bag", 8)):
        (root / name).mkdir()
        for k, i in enumerate(np.flatnonzero(fashion.labels[:, c])[:16]):
            Image.fromarray(fashion.images[i]).save(root / name / f"{k:02d}.png")
    return root


def train(photos: Path, out: Path, mode: str, *extra: str) -> Path:
    config = out.parent / f"{out.name}.toml"
    config.write_text("[backbone_options]\ninput_size = 64\n")  # 64 px: a fast test
    dhash("train", "--config", config, "--data", photos, "--method", "dha", "--bits", "16", "--protocol", "per-class",
          "--queries-per-class", "4", "--train-per-class", "10", "--epochs", "3", "--batch-size", "8",
          "--threads", "1", "--workers", "0", "--backbone-mode", mode, *SMALL, *extra, "-o", out)
    return out


@pytest.fixture(scope="module")
def frozen_run(photos, tmp_path_factory) -> Path:
    return train(photos, tmp_path_factory.mktemp("runs") / "frozen", "frozen", "--cached-views", "flip")


def small_net():
    return build_network("efficientnet-lite0", {"input_size": 64}, 16, get_method("dha"), 3, pretrained=True)


def test_frozen_training_leaves_the_backbone_unchanged(frozen_run):
    config = json.loads((frozen_run / "config.json").read_text())
    assert config["backbone_mode"] == "frozen" and config["cached_views"] == "flip"
    network = torch.load(frozen_run / "model.pt", weights_only=True)["network"]
    fresh = build_backbone("efficientnet-lite0", pretrained=True, input_size=64).state_dict()
    backbone = {k.removeprefix("backbone."): v for k, v in network.items() if k.startswith("backbone.")}
    assert backbone.keys() == fresh.keys()
    assert all(torch.equal(backbone[k], fresh[k]) for k in fresh)  # weights and BatchNorm statistics
    torch.manual_seed(0)  # the run's seed: the heads' initial weights
    assert not torch.equal(network["hash_head.weight"], small_net().state_dict()["hash_head.weight"])
    metrics = [json.loads(line) for line in (frozen_run / "metrics.jsonl").read_text().splitlines()]
    assert metrics[0]["features"]["computed"] == 30 and (frozen_run / "features.h5").is_file()
    assert [m["epoch"] for m in metrics if "epoch" in m] == [1, 2, 3]


def test_cache_is_reused_by_a_later_run_and_by_encode(photos, frozen_run, tmp_path):
    again = train(photos, tmp_path / "again", "frozen", "--feature-cache", frozen_run / "features.h5", "--bits", "24")
    metrics = json.loads((again / "metrics.jsonl").read_text().splitlines()[0])
    assert metrics["features"] == {**metrics["features"], "items": 30, "computed": 0}
    stamp = (frozen_run / "features.h5").stat().st_mtime_ns
    dhash("train", "-o", again, "--resume", "--threads", "1")  # every epoch done: reads the cache, saves the model
    assert (frozen_run / "features.h5").stat().st_mtime_ns == stamp and (again / "model.pt").is_file()
    # encode: the 30 training and validation images come from the cache, the 6 others are computed and added
    dhash("encode", photos, "--model", frozen_run / "model.pt", "--split", "database", "-o", tmp_path / "db.h5",
          "--workers", "0", "--threads", "1")
    with h5py.File(frozen_run / "features.h5", "r") as f:
        (group,) = f
        assert len(f[group]["plain"]["keys"]) == 48 - 12 and len(f[group]["flip"]["keys"]) == 30


def test_encode_and_query_image_accept_both_modes(photos, frozen_run, tmp_path):
    finetune = train(photos, tmp_path / "finetune", "finetune")
    assert json.loads((finetune / "config.json").read_text())["backbone_mode"] == "finetune"
    assert not (finetune / "features.h5").exists()
    image = photos / "sneaker" / "15.png"
    for run in (frozen_run, finetune):
        model = run / "model.pt"
        dhash("encode", photos, "--model", model, "-o", tmp_path / f"{run.name}.h5", "--workers", "0", "--threads", "1")
        codes = read_code_file(tmp_path / f"{run.name}.h5")
        assert len(codes) == 48 and codes.bits == 16
        dhash("index", tmp_path / f"{run.name}.h5", "-o", tmp_path / f"{run.name}.index.h5")
        out = dhash("query", tmp_path / f"{run.name}.index.h5", "--image", image, "--model", model, "-k", "3",
                    "--format", "json")
        hits = json.loads(out)
        assert len(hits) == 3 and hits[0]["distance"] == 0  # the image is in the database: a code at distance 0
    # the cached path and the full network give the same codes for the frozen model
    cached = read_code_file(tmp_path / f"{frozen_run.name}.h5")
    from dhash.learn.encode import load_model

    encoder = load_model(frozen_run / "model.pt", "cpu")
    direct = encoder.encode_source(load_source(str(photos)), use_cache=False)
    assert np.mean(direct.codes == cached.codes) > 0.99


def features_of(photos: Path, cache: FeatureCache, indices=None):
    net = small_net()
    source = load_source(str(photos))
    idx = np.arange(len(source)) if indices is None else np.asarray(indices)
    return backbone_features(net, source, idx, ("plain",), cache, torch.device("cpu"))


def test_cache_misses_a_changed_image(photos, tmp_path):
    folder = tmp_path / "p"
    folder.mkdir()
    for sub in ("trouser", "bag"):
        (folder / sub).mkdir()
        for k in range(3):
            (folder / sub / f"{k}.png").write_bytes((photos / sub / f"{k:02d}.png").read_bytes())
    cache = FeatureCache(tmp_path / "features.h5")
    _, first, computed = features_of(folder, cache)
    assert computed == 6
    _, again, computed = features_of(folder, cache)
    assert computed == 0 and np.array_equal(first, again)
    # same size, new content and modification time: a miss, and the new features are those of the new image
    changed = folder / "bag" / "1.png"
    Image.open(photos / "sneaker" / "01.png").save(changed)
    stat = changed.stat()
    os.utime(changed, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    _, third, computed = features_of(folder, cache)
    assert computed == 1
    _, fresh, _ = features_of(folder, FeatureCache(tmp_path / "other.h5"))
    assert np.allclose(third, fresh, atol=1e-5) and not np.allclose(third[1], first[1], atol=1e-3)  # bag/1.png
    assert np.array_equal(np.delete(third, 1, axis=0), np.delete(first, 1, axis=0))
    with h5py.File(tmp_path / "features.h5", "r") as f:
        (group,) = f
        assert len(f[group]["plain"]["keys"]) == 6  # the stale entry was replaced, not kept beside


@pytest.mark.parametrize("damage", ["truncate", "flip-bytes", "garbage"])
def test_corrupt_cache_is_rebuilt_with_one_warning(photos, tmp_path, damage):
    path = tmp_path / "features.h5"
    _, good, _ = features_of(photos, FeatureCache(path), indices=range(0, 48, 6))
    data = bytearray(path.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "flip-bytes":
        with h5py.File(path, "r") as f:
            (group,) = f
            offset = f[group]["plain"]["features"].id.get_chunk_info(0).byte_offset
        for k in range(offset + 100, offset + 400):
            data[k] ^= 0xFF
    else:
        data = b"this is no HDF5 file" + data[20:]
    path.write_bytes(bytes(data))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _, rebuilt, computed = features_of(photos, FeatureCache(path), indices=range(0, 48, 6))
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1 and "feature cache is corrupt or truncated" in messages[0] and str(path) in messages[0]
    assert computed == 8 and np.allclose(rebuilt, good, atol=1e-5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the rebuilt file reads cleanly
        _, _, computed = features_of(photos, FeatureCache(path), indices=range(0, 48, 6))
    assert computed == 0


def test_cache_keys_name_file_size_and_time_or_dataset_and_index(photos):
    source = load_source(str(photos))
    key = item_keys(source, [0])[0]
    path, stamp = key.split("\t")
    stat = os.stat(source.paths[0])
    assert path == os.path.abspath(source.paths[0]) and stamp == f"{stat.st_size}:{stat.st_mtime_ns}"
    fashion = load_source("fashion-mnist")
    assert item_keys(fashion, [7])[0] == f"{fashion.fingerprint()}:7\t"
    a, b = build_backbone("efficientnet-lite0", pretrained=True), build_backbone("efficientnet-lite0", pretrained=True)
    assert backbone_digest(a, a.input_spec) == backbone_digest(b, b.input_spec)
    c = build_backbone("efficientnet-lite0", pretrained=True, input_size=96)
    assert backbone_digest(c, c.input_spec) != backbone_digest(a, a.input_spec)
    assert backbone_digest(build_backbone("efficientnet-lite0"), a.input_spec) != backbone_digest(a, a.input_spec)


def test_preloaded_images_equal_the_decoded_files(photos):
    source = load_source(str(photos))
    spec = build_backbone("efficientnet-lite0", input_size=64).input_spec
    idx = np.array([0, 5, 20, 47])
    memory = preload(source, idx, spec, workers=0)
    assert memory.images.shape == (4, 64, 64) and memory.ids == [source.ids[i] for i in idx]
    transform = build_transform(spec, train=False)
    lazy, kept = ImageDataset(source, idx, transform), ImageDataset(memory, None, transform)
    for k in range(len(idx)):
        assert torch.equal(lazy[k][0], kept[k][0]) and torch.equal(lazy[k][1], kept[k][1])


def test_default_mode_and_input_size_follow_device_backbone_and_images(photos):
    from dhash.learn.config import input_size_for, resolve, resolve_for_data
    from dhash.learn.frozen import resolve_backbone_mode

    folder = load_source(str(photos))
    config = resolve_for_data(resolve({"data": str(photos), "method": "dha"}), folder, get_method("dha"))
    assert config["backbone"] == "efficientnet-lite0" and config["pretrained"]
    assert config["backbone_options"]["input_size"] == input_size_for(28) == 128  # 28-px PNGs: not upscaled to 224
    assert [input_size_for(side) for side in (8, 32, 40, 56, 500)] == [96, 128, 160, 224, 224]
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert resolve_backbone_mode(config, folder, cpu, resume=False) == "frozen"
    assert resolve_backbone_mode(config, folder, cuda, resume=False) == "finetune"
    assert resolve_backbone_mode(config, folder, cpu, resume=True) == "finetune"  # a run from before the setting
    assert resolve_backbone_mode({**config, "pretrained": False}, folder, cpu, resume=False) == "finetune"
    assert resolve_backbone_mode({**config, "backbone_mode": "finetune"}, folder, cpu, resume=False) == "finetune"
    fashion = load_source("fashion-mnist")
    in_memory = resolve_for_data(resolve({"data": "fashion-mnist", "method": "dha", "backbone": "efficientnet-lite0",
                                          "pretrained": True}), fashion, get_method("dha"))
    assert in_memory["backbone_options"]["input_size"] == 128
    assert resolve_backbone_mode(in_memory, fashion, cpu, resume=False) == "finetune"  # explicit frozen works too


def test_frozen_closed_form_method_on_an_in_memory_data_set(tmp_path):
    """ITQ on cached features of Fashion-MNIST items (keyed by the data set's fingerprint and index)."""
    config = tmp_path / "c.toml"
    config.write_text("[backbone_options]\ninput_size = 64\n")
    run = tmp_path / "itq"
    dhash("train", "--config", config, "--data", "fashion-mnist", "--limit", "40", "--method", "itq", "--bits", "8",
          "--backbone", "efficientnet-lite0", "--pretrained", "--backbone-mode", "frozen", "--threads", "1", "-o", run)
    fashion = load_source("fashion-mnist")
    with h5py.File(run / "features.h5", "r") as f:
        (group,) = f
        assert list(f[group]) == ["plain"]  # the default caches no flipped views
        keys = list(f[group]["plain"]["keys"].asstr()[()])
    assert len(keys) == 40 and all(k.startswith(fashion.fingerprint() + ":") for k in keys)
    record = torch.load(run / "model.pt", weights_only=True)
    assert record["config"]["backbone_mode"] == "frozen" and "hash_head.weight" not in record["network"]
    from dhash.learn.encode import load_model

    encoder = load_model(run / "model.pt", "cpu")
    train = record["split"]["train"].numpy()[:8]
    cached = encoder.encode_source(fashion, train)  # from the cache
    direct = encoder.encode_source(fashion, train, use_cache=False)  # through the full network
    assert np.mean(cached.codes == direct.codes) > 0.95
