"""Hostile input (issue 29). Valid code, index, model and checkpoint files are corrupted in seeded
ways: forged attributes, wrong kinds and dtypes, links, huge or sparse size claims, mismatched
counts, byte flips and truncation. Python API functions are also called with wrong arguments.
Every case runs in one subprocess (``tests/fuzz_runner.py``), so a crash is a failure of this test.

It asserts the following:
- the CLI exits with code 1 and prints one line ``Error: ...`` and no traceback. A byte flip may
  also leave a file that still reads correctly, and then the exit code is 0.
- the API raises a ValueError (DHashError is one).
- no output file or temporary file is left behind after a failure.
- every input file is byte-identical afterwards.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from dhash.cli.main import main
from dhash.search.codes import CodeFile, write_code_file
from dhash.search.index_file import index_code_file

SEED = 29
BITS, N, NQ, CLASSES = 20, 300, 20, 10
RUNNER = Path(__file__).with_name("fuzz_runner.py")


def cli(*args) -> None:
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == 0, (result.output, result.exception)


def _code_file(path: Path, n: int, rng: np.random.Generator) -> None:
    codes = np.packbits(rng.integers(0, 2, (n, BITS)) > 0, axis=1, bitorder="little")
    labels = np.eye(CLASSES, dtype=np.uint8)[rng.integers(0, CLASSES, n)]
    write_code_file(path, CodeFile(codes, BITS, labels, [f"test/{i}" for i in range(n)], {"dataset": "fashion-mnist"}))


@pytest.fixture(scope="module")
def valid(tmp_path_factory) -> dict[str, Path]:
    """Valid inputs: a database and a query code file, their index, and a trained run (model and checkpoint)."""
    root = tmp_path_factory.mktemp("valid")
    rng = np.random.default_rng(SEED)
    _code_file(root / "db.h5", N, rng)
    _code_file(root / "q.h5", NQ, rng)
    index_code_file(root / "db.h5", root / "db.index.h5", "linear")
    run = root / "run"
    cli("train", "--data", "fashion-mnist", "--method", "dpsh", "--bits", "8", "--backbone", "pixels",
        "--protocol", "per-class", "--queries-per-class", "2", "--train-per-class", "10", "--epochs", "1",
        "--threads", "1", "-o", run)
    return {"db": root / "db.h5", "q": root / "q.h5", "index": root / "db.index.h5", "run": run}


# --- corruptions of an HDF5 code or index file (applied to a copy opened read-write) -------------------

def _replace(name: str, make: Callable[[h5py.File], None]) -> Callable[[h5py.File], None]:
    def mutate(f: h5py.File) -> None:
        del f[name]
        make(f)
    return mutate


def _attr(name: str, value) -> Callable[[h5py.File], None]:
    def mutate(f: h5py.File) -> None:
        f.attrs[name] = value
    return mutate


def _dataset(name: str, **kw) -> Callable[[h5py.File], None]:
    return _replace(name, lambda f: f.create_dataset(name, **kw))


def _bad_utf8_ids(f: h5py.File) -> None:
    del f["ids"]
    ids = [f"test/{i}".encode() for i in range(len(f["codes"]))]
    ids[7] = b"test/\xff\xfe"
    f.create_dataset("ids", data=ids, dtype=h5py.string_dtype("utf-8"))


def _soft_loop(name: str) -> Callable[[h5py.File], None]:
    def mutate(f: h5py.File) -> None:
        del f[name]
        f[name] = h5py.SoftLink("/loop")
        f["loop"] = h5py.SoftLink(f"/{name}")
    return mutate


def _external_data(f: h5py.File) -> None:
    del f["codes"]
    f.create_dataset("codes", shape=(N, 3), dtype=np.uint8, external=[("missing.bin", 0, N * 3)])


def _virtual(f: h5py.File) -> None:
    del f["codes"]
    layout = h5py.VirtualLayout(shape=(N, 3), dtype=np.uint8)
    layout[:] = h5py.VirtualSource("missing.h5", "codes", shape=(N, 3))
    f.create_virtual_dataset("codes", layout)


def _padding_bits(f: h5py.File) -> None:
    codes = f["codes"][()]
    codes[5, -1] |= 0x80
    f["codes"][...] = codes


H5_MUTATIONS: dict[str, Callable[[h5py.File], None]] = {
    "format_version-str": _attr("format_version", "1"),
    "format_version-array": _attr("format_version", np.array([1, 1])),
    "format_version-float": _attr("format_version", 1.0),
    "format_version-bool": _attr("format_version", True),
    "format_version-2": _attr("format_version", 2),
    "bits-str": _attr("bits", "20"),
    "bits-zero": _attr("bits", 0),
    "bits-huge": _attr("bits", 2**40),
    "bits-array": _attr("bits", np.array([20])),
    "bits-wrong": _attr("bits", 30),
    "bitorder-big": _attr("bitorder", "big"),
    "bitorder-int": _attr("bitorder", 3),
    "dataset-int": _attr("dataset", 17),
    "dataset-bad-utf8": _attr("dataset", np.bytes_(b"\xff\xfe")),
    "attr-2d-array": _attr("extra", np.zeros((2, 2))),
    "codes-group": _replace("codes", lambda f: f.create_group("codes")),
    "labels-group": _replace("labels", lambda f: f.create_group("labels")),
    "ids-group": _replace("ids", lambda f: f.create_group("ids")),
    "codes-softloop": _soft_loop("codes"),
    "ids-softloop": _soft_loop("ids"),
    "codes-softlink": _replace("codes", lambda f: f.__setitem__("codes", h5py.SoftLink("/labels"))),
    "codes-external-link": _replace("codes", lambda f: f.__setitem__("codes", h5py.ExternalLink("missing.h5", "/codes"))),
    "labels-external-link": _replace("labels", lambda f: f.__setitem__("labels", h5py.ExternalLink("missing.h5", "/x"))),
    "codes-external-storage": _external_data,
    "codes-virtual": _virtual,
    "ids-bad-utf8": _bad_utf8_ids,
    "ids-int": _dataset("ids", data=np.arange(N)),
    "ids-2d": _dataset("ids", data=[["a", "b"]] * N, dtype=h5py.string_dtype()),
    "labels-str": _dataset("labels", data=["cat"] * N, dtype=h5py.string_dtype()),
    "labels-float": _dataset("labels", data=np.full((N, CLASSES), 0.5)),
    "labels-values": _dataset("labels", data=np.full((N, CLASSES), 2, np.uint8)),
    "labels-1d": _dataset("labels", data=np.zeros(N, np.uint8)),
    "labels-fewer": _dataset("labels", data=np.zeros((N - 1, CLASSES), np.uint8)),
    "ids-fewer": _dataset("ids", data=["x"] * (N - 5), dtype=h5py.string_dtype()),
    "ids-more": _dataset("ids", data=["x"] * (N + 5), dtype=h5py.string_dtype()),
    "codes-int32": _dataset("codes", data=np.zeros((N, 3), np.int32)),
    "codes-float": _dataset("codes", data=np.zeros((N, 3))),
    "codes-1d": _dataset("codes", data=np.zeros(N * 3, np.uint8)),
    "codes-3d": _dataset("codes", data=np.zeros((N, 3, 1), np.uint8)),
    "codes-width": _dataset("codes", data=np.zeros((N, 4), np.uint8)),
    "codes-scalar": _dataset("codes", data=np.uint8(3)),
    "codes-padding-bits": _padding_bits,
    "codes-1e12-rows": _dataset("codes", shape=(10**12, 3), dtype=np.uint8, chunks=(1 << 18, 3)),
    "codes-1e12-contiguous": _dataset("codes", shape=(10**12, 3), dtype=np.uint8),
    "codes-1e12-gzip": _dataset("codes", shape=(10**12, 3), dtype=np.uint8, chunks=(1 << 18, 3), compression="gzip"),
    "labels-1e9-columns": _dataset("labels", shape=(N, 10**9), dtype=np.uint8, chunks=(1, 1 << 20)),
    "ids-1e12": _dataset("ids", shape=(10**12,), dtype=h5py.string_dtype(), chunks=(1 << 16,)),
}
INDEX_MUTATIONS: dict[str, Callable[[h5py.File], None]] = {
    "dhash_index-str": _attr("dhash_index", "1"),
    "dhash_index-array": _attr("dhash_index", np.array([1])),
    "kind-unknown": _attr("kind", "lsh"),
    "kind-int": _attr("kind", 1),
    "ntotal-wrong": _attr("ntotal", N + 1),
    "ntotal-str": _attr("ntotal", "300"),
    "mih-substrings-str": lambda f: (_attr("kind", "mih")(f), _attr("substrings", "x")(f)),
    "mih-substrings-huge": lambda f: (_attr("kind", "mih")(f), _attr("substrings", 999)(f)),
    "mih-substrings-negative": lambda f: (_attr("kind", "mih")(f), _attr("substrings", -1)(f)),
    "mih-substrings-missing": _attr("kind", "mih"),
    "source_dataset-array": _attr("source_dataset", np.array([1, 2])),
}
DATA_ERRORS = ("ids-bad-utf8", "labels-values")  # in data a streamed search of the codes does not read
INDEX_SKIP = ("format_version-str", "format_version-array", "format_version-float", "format_version-bool",
              "format_version-2", "dataset-int", "dataset-bad-utf8")  # attributes an index file does not have


# --- corruptions of a model or checkpoint file (a torch.load-able dict) -----------------------------

def _edit(change: Callable[[dict], object]) -> Callable[[Path], None]:
    def mutate(path: Path) -> None:
        record = torch.load(path, weights_only=True)
        result = change(record)
        torch.save(record if result is None else result, path)
    return mutate


def _set(key: str, value) -> Callable[[Path], None]:
    return _edit(lambda r: r.__setitem__(key, value))


def _delete(key: str) -> Callable[[Path], None]:
    return _edit(lambda r: r.pop(key))


def _first_tensor(record: dict, key: str, value) -> None:
    name = next(iter(record[key]))
    record[key][name] = value


MODEL_MUTATIONS: dict[str, Callable[[Path], None]] = {
    "not-a-dict": _edit(lambda r: [1, 2, 3]),
    "format": _set("format", "something-else"),
    "format_version-str": _set("format_version", "1"),
    "no-network": _delete("network"),
    "method-int": _set("method", 5),
    "method-unknown": _set("method", "nope"),
    "bits-str": _set("bits", "8"),
    "bits-negative": _set("bits", -3),
    "bits-bool": _set("bits", True),
    "network-str": _set("network", "weights"),
    "network-shape": _edit(lambda r: _first_tensor(r, "network", torch.zeros(3, 3, 3))),
    "input_spec-list": _set("input_spec", [1, 2]),
    "input_spec-keys": _set("input_spec", {"nope": 1}),
    "backbone-str": _set("backbone", "pixels"),
    "backbone-no-name": _set("backbone", {"options": {}}),
    "params-unknown": _set("params", {"no_such_param": 1}),
    "data-list": _set("data", [1]),
    "split-float": _edit(lambda r: r["split"].__setitem__("query", torch.rand(5))),
    "split-out-of-range": _edit(lambda r: r["split"].__setitem__("query", torch.tensor([10**9]))),
    "split-negative": _edit(lambda r: r["split"].__setitem__("query", torch.tensor([-1]))),
}
CHECKPOINT_MUTATIONS: dict[str, Callable[[Path], None]] = {
    "not-a-dict": _edit(lambda r: "checkpoint"),
    "format": _set("format", "dhash-model"),
    "no-optimizer": _delete("optimizer"),
    "epoch-str": _set("epoch", "1"),
    "epoch-negative": _set("epoch", -1),
    "network-shape": _edit(lambda r: _first_tensor(r, "network", torch.zeros(2))),
    "scheduler-list": _set("scheduler", [1]),
}


def _flips(data: bytes, rng: np.random.Generator, count: int) -> list[bytes]:
    """``count`` copies of ``data`` with 1-8 random bytes replaced by random values."""
    out = []
    for _ in range(count):
        buf = bytearray(data)
        for pos in rng.integers(0, len(buf), rng.integers(1, 9)):
            buf[pos] = int(rng.integers(0, 256))
        out.append(bytes(buf))
    return out


def _truncations(data: bytes, rng: np.random.Generator, count: int) -> list[bytes]:
    return [data[:int(cut)] for cut in rng.integers(0, len(data), count)]


# --- building and judging the cases ------------------------------------------------------------------

class Cases:
    """Cases with their own folder each (inputs copied in, outputs written to ``out/``) and what to expect."""

    def __init__(self, root: Path) -> None:
        self.root, self.cases, self.expect = root, [], {}

    def folder(self, name: str) -> Path:
        d = self.root / name
        (d / "out").mkdir(parents=True)
        return d

    def cli(self, name: str, argv: list, expect: str = "error", outputs: tuple[Path, ...] = ()) -> None:
        """A ``dhash`` command; ``expect``: error (exit 1) or any (0, or 1 with one line); ``outputs``: what it
        writes on success (after a failure each must be absent, or as it was before)."""
        self.cases.append({"name": name, "argv": [str(a) for a in argv]})
        self.expect[name] = (expect, outputs)

    def api(self, name: str, code: str) -> None:
        self.cases.append({"name": name, "code": code})
        self.expect[name] = ("raise", ())


def _h5_case(cases: Cases, valid: dict[str, Path], name: str, which: str, content: bytes | None,
             mutate: Callable[[h5py.File], None] | None, expect: str) -> None:
    d = cases.folder(name)
    bad = d / ("bad.index.h5" if which == "index" else "bad.h5")
    if content is None:
        shutil.copy(valid[which], bad)
        with h5py.File(bad, "r+") as f:
            mutate(f)
    else:
        bad.write_bytes(content)
    out = d / "out"
    if which == "index":
        cases.cli(f"{name}/query", ["query", bad, "--codes", valid["q"], "-k", "3", "-o", out / "hits.csv"], expect,
                  (out / "hits.csv",))
        cases.cli(f"{name}/grid", ["query", bad, "--codes", valid["q"], "-k", "3", "--grid", out / "g.png",
                                   "-o", out / "hits.json"], expect, (out / "g.png", out / "hits.json"))
        return
    cases.cli(f"{name}/index", ["index", bad, "-o", out / "db.index.h5"], expect, (out / "db.index.h5",))
    cases.cli(f"{name}/evaluate", ["evaluate", "--queries", valid["q"], "--database", bad, "--json"], expect)
    cases.cli(f"{name}/query", ["query", valid["index"], "--codes", bad, "-k", "3", "-o", out / "hits.json"], expect,
              (out / "hits.json",))
    if expect == "error" and name.split("/")[-1] not in DATA_ERRORS:
        cases.api(f"{name}/search_code_file", f"search.search_code_file({str(bad)!r}, np.zeros((2, 3), np.uint8), 3)")


def _torch_case(cases: Cases, valid: dict[str, Path], name: str, which: str, content: bytes | None,
                mutate: Callable[[Path], None] | None, expect: str) -> None:
    d = cases.folder(name)
    run = d / "run"
    shutil.copytree(valid["run"], run)
    target = run / ("model.pt" if which == "model" else "checkpoint.pt")
    if content is None:
        mutate(target)
    else:
        target.write_bytes(content)
    out = d / "out"
    if which == "model":
        cases.cli(f"{name}/encode", ["encode", "fashion-mnist", "--model", target, "--split", "query",
                                     "-o", out / "q.h5"], expect, (out / "q.h5",))
        if expect == "error":
            cases.cli(f"{name}/evaluate", ["evaluate", "--model", target, "--json"], expect)
    else:  # the run is finished, so --resume only loads the checkpoint and writes model.pt again
        cases.cli(f"{name}/resume", ["train", "-o", run, "--resume", "--threads", "1"], expect, (run / "model.pt",))


API_CASES = {
    "linear-bits-0": "search.LinearIndex(0)",
    "linear-bits-negative": "search.LinearIndex(-8)",
    "linear-bits-2048": "search.LinearIndex(2048)",
    "linear-bits-str": "search.LinearIndex('8')",
    "linear-bits-float": "search.LinearIndex(8.0)",
    "add-narrow": "search.LinearIndex(1024).add(np.zeros((3, 1), np.uint8))",
    "add-wide": "search.LinearIndex(16).add(np.zeros((3, 256), np.uint8))",
    "add-int32": "search.LinearIndex(16).add(np.zeros((3, 2), np.int32))",
    "add-list": "search.LinearIndex(16).add([[1, 2]])",
    "add-3d": "search.LinearIndex(16).add(np.zeros((2, 2, 2), np.uint8))",
    "add-padding": "search.LinearIndex(12).add(np.full((2, 2), 255, np.uint8))",
    "search-k0": "ix = search.LinearIndex(16); ix.add(np.zeros((4, 2), np.uint8)); ix.search(np.zeros((1, 2), np.uint8), 0)",
    "search-k-negative": "ix = search.LinearIndex(16); ix.search(np.zeros((1, 2), np.uint8), -1)",
    "search-k-float": "ix = search.LinearIndex(16); ix.search(np.zeros((1, 2), np.uint8), 2.5)",
    "search-width": "ix = search.LinearIndex(16); ix.add(np.zeros((4, 2), np.uint8)); ix.search(np.zeros((1, 3), np.uint8), 1)",
    "search-threads-0": "ix = search.LinearIndex(16); ix.search(np.zeros((1, 2), np.uint8), 1, threads=0)",
    "search-kernel": "ix = search.LinearIndex(16); ix.search(np.zeros((1, 2), np.uint8), 1, kernel='sse9')",
    "range-negative": "ix = search.LinearIndex(16); ix.range_search(np.zeros((1, 2), np.uint8), -1)",
    "mih-substrings-above-bits": "search.MIHIndex(16, 17)",
    "mih-substrings-0": "search.MIHIndex(16, 0)",
    "mih-substrings-too-few": "search.MIHIndex(64, 1)",
    "mih-substrings-str": "search.MIHIndex(16, '2')",
    "mih-search-k0": "ix = search.MIHIndex(16); ix.add(np.zeros((5000, 2), np.uint8)); ix.search(np.zeros((1, 2), np.uint8), 0)",
    "mih-search-width": "ix = search.MIHIndex(16); ix.add(np.zeros((5000, 2), np.uint8)); ix.search(np.zeros((1, 8), np.uint8), 1)",
    "hamming-bits": "search.hamming_distances(np.zeros((1, 2), np.uint8), np.zeros((3, 2), np.uint8), 24)",
    "hamming-bits-0": "search.hamming_distances(np.zeros((1, 2), np.uint8), np.zeros((3, 2), np.uint8), 0)",
    "hamming-mismatch": "search.hamming_distances(np.zeros((1, 2), np.uint8), np.zeros((3, 4), np.uint8), 16)",
    "map-labels-count": "metrics.mean_average_precision(np.zeros((2, 2), np.uint8), np.zeros((3, 2), np.uint8), "
                        "np.eye(2, dtype=np.uint8), np.eye(2, dtype=np.uint8), 16)",
    "map-top-k-0": "metrics.mean_average_precision(np.zeros((2, 2), np.uint8), np.zeros((2, 2), np.uint8), "
                   "np.eye(2, dtype=np.uint8), np.eye(2, dtype=np.uint8), 16, top_k=0)",
    "map-ties": "metrics.mean_average_precision(np.zeros((2, 2), np.uint8), np.zeros((2, 2), np.uint8), "
                "np.eye(2, dtype=np.uint8), np.eye(2, dtype=np.uint8), 16, ties='random')",
    "map-bits": "metrics.mean_average_precision(np.zeros((2, 2), np.uint8), np.zeros((2, 2), np.uint8), "
                "np.eye(2, dtype=np.uint8), np.eye(2, dtype=np.uint8), 8)",
}


def _api_file_cases(cases: Cases, valid: dict[str, Path]) -> None:
    db, q = str(valid["db"]), str(valid["q"])
    calls = {
        "stream-k0": f"search.search_code_file({db!r}, np.zeros((1, 3), np.uint8), 0)",
        "stream-block-rows-0": f"search.search_code_file({db!r}, np.zeros((1, 3), np.uint8), 1, block_rows=0)",
        "stream-width": f"search.search_code_file({db!r}, np.zeros((1, 5), np.uint8), 1)",
        "stream-radius-negative": f"search.range_search_code_file({db!r}, np.zeros((1, 3), np.uint8), -2)",
        "evaluate-map-at-0": f"metrics.evaluate_codes({q!r}, {db!r}, map_at=0)",
        "evaluate-radius": f"metrics.evaluate_codes({q!r}, {db!r}, precision_radius=-1)",
        "evaluate-ties": f"metrics.evaluate_codes({q!r}, {db!r}, ties='bad')",
        "evaluate-missing": f"metrics.evaluate_codes({q!r}, {db + '.missing'!r})",
    }
    for name, code in {**API_CASES, **calls}.items():
        cases.api(f"api/{name}", code)


def build_cases(root: Path, valid: dict[str, Path]) -> Cases:
    rng = np.random.default_rng(SEED)
    cases = Cases(root)
    for name, mutate in H5_MUTATIONS.items():
        _h5_case(cases, valid, f"code/{name}", "db", None, mutate, "error")
        if name not in INDEX_SKIP:
            _h5_case(cases, valid, f"index/{name}", "index", None, mutate, "error")
    for name, mutate in INDEX_MUTATIONS.items():
        _h5_case(cases, valid, f"index/{name}", "index", None, mutate, "error")
    for which in ("db", "index"):
        data = valid[which].read_bytes()
        for i, content in enumerate(_flips(data, rng, 6)):
            _h5_case(cases, valid, f"{which}/flip{i}", which, content, None, "any")
        for i, content in enumerate(_truncations(data, rng, 3)):
            _h5_case(cases, valid, f"{which}/truncate{i}", which, content, None, "error")
    for raw, name in ((b"", "empty"), (b"not an hdf5 file\n", "text")):
        _h5_case(cases, valid, f"code/{name}", "db", raw, None, "error")
        _h5_case(cases, valid, f"index/{name}", "index", raw, None, "error")
    for which, mutations in (("model", MODEL_MUTATIONS), ("checkpoint", CHECKPOINT_MUTATIONS)):
        for name, mutate in mutations.items():
            _torch_case(cases, valid, f"{which}/{name}", which, None, mutate, "error")
        data = (valid["run"] / ("model.pt" if which == "model" else "checkpoint.pt")).read_bytes()
        for i, content in enumerate(_flips(data, rng, 3)):
            _torch_case(cases, valid, f"{which}/flip{i}", which, content, None, "any")
        for i, content in enumerate(_truncations(data, rng, 2)):
            _torch_case(cases, valid, f"{which}/truncate{i}", which, content, None, "error")
    _api_file_cases(cases, valid)
    return cases


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): _digest(p) for p in sorted(root.rglob("*")) if p.is_file()}


def _judge(result: dict, expect: str) -> str | None:
    """What is wrong with a case's result (None: nothing)."""
    if expect == "raise":
        if result["raised"] is None:
            return "no exception"
        return None if "ValueError" in result["raised"] else f"raised {result['raised'][0]}: {result['message']}"
    if result["exception"] is not None:
        return f"exception:\n{result['exception']}"
    code, output = result["exit_code"], result["output"]
    if code == 0 and expect == "any":
        return None
    errors = [line for line in output.splitlines() if line.startswith("Error: ")]
    if code != 1 or len(errors) != 1 or not output.strip().endswith(errors[0]) or "Traceback" in output:
        return f"exit code {code}, output:\n{output}"
    return None


def test_hostile_files_and_arguments_fail_cleanly(valid, tmp_path):
    cases = build_cases(tmp_path / "cases", valid)
    valid_before = _snapshot(valid["db"].parent)
    before = _snapshot(cases.root)
    case_file, results_file = tmp_path / "cases.json", tmp_path / "results.jsonl"
    case_file.write_text(json.dumps(cases.cases))
    proc = subprocess.run([sys.executable, str(RUNNER), str(case_file), str(results_file)],
                          capture_output=True, text=True, timeout=300)
    lines = [json.loads(line) for line in results_file.read_text().splitlines()]
    assert proc.returncode == 0, f"runner died ({proc.returncode}) in case {lines[-1]}:\n{proc.stderr[-3000:]}"
    results = {r["name"]: r for r in lines if "name" in r}
    assert list(results) == [c["name"] for c in cases.cases]
    problems, written = [], set()
    for name, result in results.items():
        expect, outputs = cases.expect[name]
        problem = _judge(result, expect)
        failed = result.get("exit_code") != 0
        for out in outputs:
            rel = str(out.relative_to(cases.root))
            if failed and out.exists() and before.get(rel) != _digest(out):
                problem = problem or f"left {rel} behind after failing"
            written.add(rel)
        if problem:
            problems.append(f"{name}: {problem}")
    assert not problems, f"{len(problems)} of {len(results)} cases failed:\n" + "\n".join(problems)
    after = _snapshot(cases.root)
    changed = sorted(rel for rel in set(before) | set(after) if before.get(rel) != after.get(rel) and rel not in written)
    assert not changed, f"inputs changed, or stray files: {changed[:10]}"
    assert _snapshot(valid["db"].parent) == valid_before
