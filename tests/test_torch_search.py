"""The torch Hamming search (``dhash.search.torch_search``, the path of ``--device cuda``) against the
compiled core and the NumPy reference: distances, k-NN with ties, k > N, radius search, chunked
blocks, ``evaluate_codes(device=)`` and the ``--device cuda`` options of ``dhash query`` / ``evaluate``.
Each test runs on the CPU torch device here and again on CUDA where a GPU is present."""
import json
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from conftest import CUDA
from dhash.cli.main import main
from dhash.errors import DHashError
from dhash.evaluate.metrics import evaluate_codes
from dhash.search import CodeFile, LinearIndex, hamming_distances, index_code_file, write_code_file
from dhash.search.torch_search import TorchIndex
from test_search import random_codes, ref_knn, ref_range

BITS = [1, 12, 64, 100, 1024]


def clustered(rng, n, bits, centres=4, flip=0.05):
    """Codes near a few centres: many equal distances, so tie order is tested."""
    c = rng.random((centres, bits)) < 0.5
    return np.packbits(c[rng.integers(0, centres, n)] ^ (rng.random((n, bits)) < flip), axis=1, bitorder="little")


@pytest.mark.parametrize("bits", BITS)
@pytest.mark.parametrize("budget", [None, 1000])  # 1000 words: many query blocks and database chunks
def test_matches_the_core_and_the_reference(device, bits, budget):
    rng = np.random.default_rng(bits)
    db, q = clustered(rng, 700, bits), clustered(rng, 23, bits)
    q[0] = db[5]
    index = TorchIndex(db, bits, device, budget=budget)
    core = LinearIndex(bits)
    core.add(db)
    np.testing.assert_array_equal(index.distances(q), hamming_distances(q, db, bits))
    assert index.distances(q).dtype == np.uint16
    for k in (1, 10, 700, 900):  # 900 > N: padded
        got, want = index.search(q, k), core.search(q, k)
        assert got[0].dtype == np.int32 and got[1].dtype == np.int64
        for a, b, c in zip(got, want, ref_knn(q, db, k, bits)):
            np.testing.assert_array_equal(a, b)
            np.testing.assert_array_equal(a, c)
    for radius in (0, bits // 8, bits):
        got, want = index.range_search(q, radius), core.range_search(q, radius)
        assert [a.dtype for a in got] == [np.int64, np.int32, np.int64]
        for a, b, c in zip(got, want, ref_range(q, db, radius)):
            np.testing.assert_array_equal(a, b)
            np.testing.assert_array_equal(a, c)


def test_uniform_codes_and_edge_cases(device):
    rng = np.random.default_rng(7)
    db, q = random_codes(rng, 5000, 64), random_codes(rng, 50, 64)
    index, core = TorchIndex(db, 64, device), LinearIndex(64)
    core.add(db)
    for a, b in zip(index.search(q, 25), core.search(q, 25)):
        np.testing.assert_array_equal(a, b)
    one = index.search(q[3], 4)  # a single query as a 1-D array
    np.testing.assert_array_equal(one[1], core.search(q[3:4], 4)[1])
    empty = TorchIndex(np.zeros((0, 8), np.uint8), 64, device)
    d, i = empty.search(q, 3)
    assert (d == 65).all() and (i == -1).all()
    lims, d, i = empty.range_search(q, 5)
    assert (lims == 0).all() and len(lims) == 51 and d.size == i.size == 0
    assert index.search(q[:0], 3)[0].shape == (0, 3)
    for bad in (lambda: index.search(q, 0), lambda: index.range_search(q, -1),
                lambda: index.search(q[:, :4], 1), lambda: TorchIndex(db, 60, device)):
        with pytest.raises(DHashError):
            bad()


def test_evaluate_codes_on_the_device_gives_the_same_metrics(device):
    rng = np.random.default_rng(3)
    centres = rng.random((6, 32)) < 0.5
    yq, ydb = rng.integers(0, 6, 60), rng.integers(0, 6, 900)
    flip = lambda n: rng.random((n, 32)) < 0.2  # noqa: E731
    q = CodeFile(np.packbits(centres[yq] ^ flip(60), axis=1, bitorder="little"), 32, np.eye(6, dtype=np.uint8)[yq])
    db = CodeFile(np.packbits(centres[ydb] ^ flip(900), axis=1, bitorder="little"), 32, np.eye(6, dtype=np.uint8)[ydb])
    for ties in ("stable", "average"):
        options = dict(map_at=[100, "all"], precision_at=[10, 100], curves=True, ties=ties, threads=2)
        assert evaluate_codes(q, db, device=device, **options) == evaluate_codes(q, db, **options)


def test_dhash_search_does_not_import_torch():
    code = "import sys, dhash.search.torch_search, dhash.search; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


@pytest.fixture
def code_files(tmp_path):
    rng = np.random.default_rng(11)
    y = rng.integers(0, 4, 400)
    db = clustered(rng, 400, 48)
    labels = np.eye(4, dtype=np.uint8)
    write_code_file(tmp_path / "db.h5", CodeFile(db, 48, labels[y], ids=[f"img/{i}" for i in range(400)]))
    write_code_file(tmp_path / "q.h5", CodeFile(db[:30] ^ 1, 48, labels[y[:30]]))
    index_code_file(tmp_path / "db.h5", tmp_path / "db.index.h5", kind="mih")
    return tmp_path


def invoke(*args, code: int = 0) -> str:
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == code, (result.output, result.exception)
    return result.output


@pytest.mark.cuda
@pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU")
@pytest.mark.parametrize("how", [["-k", "12"], ["--radius", "3"]])
def test_query_and_evaluate_with_device_cuda(code_files, how):
    t = code_files
    args = ["query", t / "db.index.h5", "--codes", t / "q.h5", *how, "--format", "json"]
    assert json.loads(invoke(*args, "--device", "cuda")) == json.loads(invoke(*args, "--device", "cpu"))
    args = ["evaluate", "-q", t / "q.h5", "-d", t / "db.h5", "--map-at", "50,all", "--json"]
    assert json.loads(invoke(*args, "--device", "cuda")) == json.loads(invoke(*args, "--device", "cpu"))


@pytest.mark.skipif(CUDA, reason="checks the error on a machine without CUDA")
def test_device_cuda_without_a_gpu_is_one_line(code_files):
    t = code_files
    for args in (["query", t / "db.index.h5", "--codes", t / "q.h5", "-k", "3"],
                 ["evaluate", "-q", t / "q.h5", "-d", t / "db.h5"]):
        out = invoke(*args, "--device", "cuda", code=1)
        assert out.strip() == "Error: --device cuda: no CUDA device is available (use --device cpu)", out
