"""Packing rules and the HDF5 code file: round trips, validation, atomic writes."""
import h5py
import numpy as np
import pytest

from dhash import CodeFile, DHashError, pack_codes, read_code_file, unpack_codes, write_code_file
from dhash.atomic import atomic_path
from dhash.search.codes import code_file_info, codes_to_signs, iter_code_blocks


@pytest.mark.parametrize("bits", [1, 7, 8, 12, 36, 64, 100, 1024])
def test_pack_matches_bit_layout(bits):
    rng = np.random.default_rng(bits)
    x = rng.standard_normal((9, bits))
    packed = pack_codes(x)
    assert packed.shape == (9, (bits + 7) // 8) and packed.dtype == np.uint8
    for j in range(bits):  # bit j at byte j // 8, position j % 8 (little bit order)
        assert np.array_equal((packed[:, j // 8] >> (j % 8)) & 1, (x[:, j] > 0).astype(np.uint8))
    assert np.array_equal(unpack_codes(packed, bits), (x > 0).astype(np.uint8))
    assert np.array_equal(codes_to_signs(packed, bits), np.where(x > 0, 1.0, -1.0))
    if bits % 8:
        assert not np.any(packed[:, -1] >> (bits % 8)), "padding bits must be zero"


def test_exact_zero_is_negative_bit():
    assert pack_codes(np.array([[0.0, -0.0, 1e-30, -1.0]]))[0, 0] == 0b0100


def test_pack_accepts_torch():
    torch = pytest.importorskip("torch")
    assert np.array_equal(pack_codes(torch.tensor([[1.0, -1.0, 2.0]])), [[0b101]])


@pytest.mark.parametrize(
    "codes,bits,msg",
    [
        (np.zeros((2, 2), np.int32), 16, "uint8"),
        (np.zeros(4, np.uint8), 16, "2-D"),
        (np.zeros((2, 3), np.uint8), 16, "need 2 bytes"),
        (np.full((2, 2), 255, np.uint8), 12, "padding"),
        (np.zeros((2, 1), np.uint8), 0, "1..1024"),
    ],
)
def test_bad_codes_give_one_line_errors(codes, bits, msg):
    with pytest.raises(DHashError, match=msg) as err:
        CodeFile(codes, bits)
    assert "\n" not in str(err.value)


def test_round_trip_with_labels_ids_and_provenance(tmp_path):
    rng = np.random.default_rng(0)
    codes = pack_codes(rng.standard_normal((50, 36)))
    labels = rng.integers(0, 2, (50, 5)).astype(np.uint8)
    ids = [f"test/{i}" for i in range(49)] + ["dir/ünïcode.png"]
    path = write_code_file(tmp_path / "c.h5", CodeFile(codes, 36, labels, ids, {"method": "dha", "split": "query"}))
    back = read_code_file(path)
    assert back.bits == 36 and np.array_equal(back.codes, codes) and np.array_equal(back.labels, labels)
    assert back.ids == ids
    assert back.attrs["method"] == "dha" and back.attrs["split"] == "query" and "dhash_version" in back.attrs
    assert code_file_info(path) == (36, 50)
    blocks = list(iter_code_blocks(path, block_rows=16))
    assert [s for s, _ in blocks] == [0, 16, 32, 48]
    assert np.array_equal(np.concatenate([b for _, b in blocks]), codes)
    with h5py.File(path) as f:
        assert f["codes"].chunks is not None and f.attrs["bitorder"] == "little" and f.attrs["format_version"] == 1


def test_empty_code_file(tmp_path):
    path = write_code_file(tmp_path / "e.h5", CodeFile(np.zeros((0, 2), np.uint8), 16))
    assert len(read_code_file(path)) == 0


def test_reader_errors_name_the_file(tmp_path):
    with pytest.raises(DHashError, match="no such file"):
        read_code_file(tmp_path / "missing.h5")
    (tmp_path / "text.h5").write_text("not hdf5")
    with pytest.raises(DHashError, match="text.h5: not an HDF5 file"):
        read_code_file(tmp_path / "text.h5")
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["x"] = 1
    with pytest.raises(DHashError, match="other.h5: not a dhash code file"):
        read_code_file(tmp_path / "other.h5")
    with h5py.File(tmp_path / "bad.h5", "w") as f:
        f["codes"] = np.zeros((3, 4), np.uint8)
        f.attrs.update(bits=16, bitorder="little", format_version=1)
    with pytest.raises(DHashError, match="bad.h5: 'codes' must be uint8 N x 2"):
        read_code_file(tmp_path / "bad.h5")


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.h5"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("boom")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.h5"]


def test_never_overwrites_an_input(tmp_path):
    src = write_code_file(tmp_path / "in.h5", CodeFile(np.zeros((1, 1), np.uint8), 8))
    with pytest.raises(DHashError, match="refusing to overwrite an input"):
        write_code_file(src, CodeFile(np.zeros((1, 1), np.uint8), 8), inputs=[src])


def test_outputs_get_umask_permissions(tmp_path):
    import os

    old = os.umask(0o022)
    try:
        path = write_code_file(tmp_path / "p.h5", CodeFile(np.zeros((1, 1), np.uint8), 8))
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644
