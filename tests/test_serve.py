"""`dhash serve`: the real server (a `dhash serve` subprocess on 127.0.0.1, a free port) called over HTTP.

/search must equal `dhash query` on the same codes, /search/image must equal `dhash query --image`;
bad input gets a 4xx JSON error and the server keeps serving; a reload swaps the index without
failing requests in flight; the page is driven in headless Chromium (Debian's chromium-driver).
The same server over a Milvus Lite file (`dhash serve --uri`) must answer as `dhash query --uri`
(equal distances; equal ids except at ties on the k-th distance).
"""
from __future__ import annotations

import http.client
import io
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from selenium import webdriver
from selenium.webdriver.chrome.service import Service as ChromeService
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from dhash.cli.main import main
from dhash.learn.data import load_source
from dhash.search.codes import read_code_file
from dhash.search.index import available_kernels

K = 10


def dhash(*args, code: int = 0) -> str:
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == code, (result.output, result.exception)
    return result.output


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


DHASH = [sys.executable, "-c", "from dhash.cli.main import main; main()"]


class Server:
    """`dhash serve ARGS...` in a subprocess (its log beside the first argument, or in ``log_dir``);
    stopped by ``close``."""

    def __init__(self, *args: str | Path, log_dir: Path | None = None) -> None:
        self.port = free_port()
        self.log = (log_dir or Path(args[0]).parent) / f"serve-{self.port}.log"
        with self.log.open("w") as log:
            self.proc = subprocess.Popen([*DHASH, "serve", *map(str, args), "--port", str(self.port)],
                                         stdout=log, stderr=subprocess.STDOUT)
        deadline = time.time() + 120
        while time.time() < deadline:
            assert self.proc.poll() is None, self.log.read_text()
            try:
                if self.call("GET", "/health")[0] == 200:
                    return
            except OSError:
                time.sleep(0.3)
        self.close()
        raise AssertionError(f"server did not start: {self.log.read_text()}")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def call(self, method: str, path: str, body: bytes | None = None,
             headers: dict[str, str] | None = None) -> tuple[int, str, bytes]:
        """(status, content type, body) of one request; ``path`` is sent exactly as given."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            return response.status, response.getheader("content-type", ""), response.read()
        finally:
            conn.close()

    def json(self, method: str, path: str, payload=None, raw: bytes | None = None,
             headers: dict[str, str] | None = None) -> tuple[int, dict]:
        body = raw if raw is not None else None if payload is None else json.dumps(payload).encode()
        h = {"Content-Type": "application/json"} if payload is not None else {}
        status, ctype, data = self.call(method, path, body, {**h, **(headers or {})})
        assert ctype.startswith("application/json"), (status, ctype, data[:200])
        return status, json.loads(data)

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def multipart(data: bytes, filename: str = "query.png", field: str = "image") -> tuple[bytes, dict[str, str]]:
    boundary = "dhash-test-boundary-7d1f"
    head = (f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{filename}"\r\n'
            f"Content-Type: application/octet-stream\r\n\r\n").encode()
    return head + data + f"\r\n--{boundary}--\r\n".encode(), {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def png_bytes(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def fashion():
    return load_source("fashion-mnist")


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """LSH (16 bits) fitted on 500 Fashion-MNIST images; its training items indexed, its queries as codes."""
    root = tmp_path_factory.mktemp("serve")
    run = root / "lsh16"
    dhash("train", "--data", "fashion-mnist", "--method", "lsh", "--bits", "16", "--protocol", "per-class",
          "--queries-per-class", "20", "--train-per-class", "50", "--threads", "1", "-o", run)
    model = run / "model.pt"
    dhash("encode", "fashion-mnist", "--model", model, "--split", "train", "-o", root / "db.h5")
    dhash("encode", "fashion-mnist", "--model", model, "--split", "query", "-o", root / "q.h5")
    dhash("index", root / "db.h5", "-o", root / "db.index.h5")
    return {"root": root, "model": model, "db": root / "db.h5", "q": root / "q.h5", "index": root / "db.index.h5"}


@pytest.fixture(scope="module")
def server(files):
    srv = Server(files["index"], "--model", str(files["model"]))
    yield srv
    srv.close()


def query_rows(index: Path, *args) -> dict[int, list[tuple[int, str, int]]]:
    """`dhash query --format json` as {query: [(index, id, distance), ...]} in rank order."""
    rows = json.loads(dhash("query", index, *args, "--format", "json"))
    out: dict[int, list] = {}
    for row in rows:
        out.setdefault(row["query"], []).append((row["index"], row["id"], row["distance"]))
    return out


def hits_rows(hits: dict) -> list[tuple[int, str, int]]:
    return list(zip(hits["indices"], hits["ids"], hits["distances"]))


def test_search_by_code_equals_dhash_query(server, files):
    q = read_code_file(files["q"])
    hexes = [c.tobytes().hex() for c in q.codes]
    status, res = server.json("POST", "/search", {"codes": hexes, "k": K})
    assert status == 200 and res["bits"] == 16 and len(res["results"]) == len(q)
    expected = query_rows(files["index"], "--codes", files["q"], "-k", K)
    assert [hits_rows(h) for h in res["results"]] == [expected[n] for n in range(len(q))]
    db = read_code_file(files["db"])
    classes = [int(np.flatnonzero(db.labels[i])[0]) for i in res["results"][0]["indices"]]
    assert [labels[0] for labels in res["results"][0]["labels"]] == classes
    assert res["classes"][1] == "Trouser"
    # 0/1 lists are the same codes; radius search equals `dhash query --radius`
    bits = np.unpackbits(q.codes[:5], axis=1, count=16, bitorder="little").tolist()
    status, res = server.json("POST", "/search", {"codes": bits, "radius": 2})
    expected = query_rows(files["index"], "--codes", files["q"], "--first", 5, "--radius", 2)
    assert status == 200 and [hits_rows(h) for h in res["results"]] == [expected.get(n, []) for n in range(5)]
    # radius 16 returns all 500 codes; 1,000 queries share the 100,000 results a response may hold
    status, res = server.json("POST", "/search", {"codes": hexes[:2] * 500, "radius": 16})
    expected = query_rows(files["index"], "--codes", files["q"], "--first", 2, "--radius", 16)
    assert status == 200 and len(res["results"]) == 1000
    assert [hits_rows(h) for h in res["results"][:2]] == [expected[n][:100] for n in range(2)]
    assert all(h["truncated"] == 400 for h in res["results"])


def test_search_by_image_equals_dhash_query_image(server, files, fashion, tmp_path):
    db = read_code_file(files["db"])
    row = {id_: i for i, id_ in enumerate(fashion.ids)}
    paths = []
    for n in (0, 7, 123):
        path = tmp_path / f"item{n}.png"
        path.write_bytes(png_bytes(fashion.images[row[db.ids[n]]]))
        paths.append(path)
        body, headers = multipart(path.read_bytes(), path.name)
        status, res = server.json("POST", f"/search/image?k={K}", raw=body, headers=headers)
        assert status == 200, res
        assert res["code"] == db.codes[n].tobytes().hex()  # the lossless PNG of a database item: its own code
        hits = res["results"][0]
        assert n in hits["indices"] and hits["distances"][hits["indices"].index(n)] == 0
        status, raw = server.json("POST", f"/search/image?k={K}", raw=path.read_bytes(),
                                  headers={"Content-Type": "image/png"})
        assert status == 200 and raw["results"] == res["results"]
    args = [a for p in paths for a in ("--image", p)]
    expected = query_rows(files["index"], *args, "--model", files["model"], "-k", K)
    for n, path in enumerate(paths):
        body, headers = multipart(path.read_bytes(), path.name)
        status, res = server.json("POST", f"/search/image?k={K}", raw=body, headers=headers)
        assert hits_rows(res["results"][0]) == expected[n]


def test_item_images_and_random_items(server, files, fashion):
    db = read_code_file(files["db"])
    status, ctype, data = server.call("GET", f"/items/{db.ids[3]}/image")
    assert status == 200 and ctype == "image/png"
    served = np.asarray(Image.open(io.BytesIO(data)))
    assert np.array_equal(served, fashion.images[fashion.ids.index(db.ids[3])])
    status, item = server.json("GET", "/items/random")
    assert status == 200 and item["id"] == db.ids[item["index"]]
    assert item["code"] == db.codes[item["index"]].tobytes().hex()
    assert item["labels"] == np.flatnonzero(db.labels[item["index"]]).tolist()


@pytest.mark.parametrize("path", ["/items/../../etc/passwd/image", "/items/%2e%2e/%2e%2e/etc/passwd/image",
                                  "/items/%2E%2E%2F%2E%2E%2Fetc%2Fpasswd/image", "/items//etc/passwd/image",
                                  "/items/train%2F..%2F..%2F..%2Fetc%2Fpasswd/image", "/items/no-such-id/image"])
def test_item_paths_outside_the_database_are_refused(server, path):
    status, ctype, data = server.call("GET", path)
    assert 400 <= status < 500 and b"root:" not in data
    if ctype.startswith("application/json"):
        assert "error" in json.loads(data)


def _bomb_png(size: int = 30_000) -> bytes:
    """A PNG header declaring size × size grey pixels (900 megapixels) with a few rows of data: tiny on disk."""
    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))
    ihdr = struct.pack(">IIBBBBB", size, size, 8, 0, 0, 0, 0)
    rows = zlib.compress(b"\0" * (size + 1) * 64, 9)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")


def _truncated_png(fashion) -> bytes:
    rng = np.random.default_rng(0)
    whole = png_bytes(rng.integers(0, 256, (200, 200), dtype=np.uint8))
    return whole[: len(whole) // 2]


def test_bad_input_gets_a_4xx_json_error_and_the_server_keeps_serving(server, files, fashion):
    def upload(data: bytes) -> tuple[int, dict]:
        body, headers = multipart(data)
        return server.json("POST", f"/search/image?k={K}", raw=body, headers=headers)

    cases = {
        "non-image": (upload(b"this is not an image, just text\n" * 20), 415, "not an image"),
        "truncated": (upload(_truncated_png(fashion)), 400, "cannot decode"),
        "bomb": (upload(_bomb_png()), 413, "pixels"),
        "wrong length": (server.json("POST", "/search", {"codes": ["a3f0c1"], "k": 3}), 400, "4 hex digits"),
        "wrong bits": (server.json("POST", "/search", {"codes": [[0, 1, 1]], "k": 3}), 400, "16 bits"),
        "not hex": (server.json("POST", "/search", {"codes": ["zz00"], "k": 3}), 400, "hex"),
        "k = 0": (server.json("POST", "/search", {"codes": ["a3f0"], "k": 0}), 422, "k"),
        "k < 0": (server.json("POST", "/search", {"codes": ["a3f0"], "k": -4}), 422, "k"),
        "image k = 0": (server.json("POST", "/search/image?k=0", raw=b"x", headers={"Content-Type": "image/png"}),
                        422, "k"),
        "too many results": (server.json("POST", "/search", {"codes": ["a3f0"] * 20, "k": 10_000}), 400, "limit"),
        "k and radius": (server.json("POST", "/search", {"codes": ["a3f0"], "k": 1, "radius": 1}), 400, "exactly one"),
        "malformed JSON": (server.json("POST", "/search", raw=b'{"codes": ["a3', headers={"Content-Type": "application/json"}),
                           422, "malformed JSON"),
        "no content type": (server.json("POST", "/search", raw=b'{"codes": ["a3f0"], "k": 1}'), 422, "Content-Type"),
        "no codes": (server.json("POST", "/search", {"codes": [], "k": 3}), 422, "codes"),
        "no file field": (server.json("POST", f"/search/image?k={K}", raw=multipart(b"abc", field="other")[0],
                                      headers=multipart(b"")[1]), 400, "'image'"),
        "unknown route": (server.json("GET", "/nothing/here"), 404, "Not Found"),
    }
    for name, ((status, body), want, text) in cases.items():
        assert status == want and text in body["error"], (name, status, body)
        assert "Traceback" not in body["error"] and "\n" not in body["error"], name
    assert server.json("GET", "/health") == (200, {"status": "ok", "codes": 500})


def test_uploads_over_the_size_limit_get_413(files, fashion, tmp_path):
    srv = Server(files["index"], "--model", str(files["model"]), "--max-upload-mb", "1")
    try:
        big = b"\x89PNG" + os.urandom(3 * 1024 * 1024)
        body, headers = multipart(big)
        status, res = srv.json("POST", f"/search/image?k={K}", raw=body, headers=headers)
        assert status == 413 and "over the limit" in res["error"]

        def chunks():  # no Content-Length: the limit applies while the body streams in
            for start in range(0, len(big), 1 << 16):
                yield big[start:start + (1 << 16)]

        conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=60)
        try:
            conn.request("POST", f"/search/image?k={K}", body=chunks(), headers={"Content-Type": "image/png"},
                         encode_chunked=True)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may answer and close before the whole body is sent
        response = conn.getresponse()
        assert response.status == 413 and "over the limit" in json.loads(response.read())["error"]
        conn.close()
        body, headers = multipart(png_bytes(fashion.images[0]))
        assert srv.json("POST", f"/search/image?k={K}", raw=body, headers=headers)[0] == 200
    finally:
        srv.close()


def test_stats_count_queries_and_latency(server):
    before = server.json("GET", "/stats")[1]["queries_served"]
    server.json("POST", "/search", {"codes": ["a3f0", "0000", "ffff"], "k": 2})
    status, stats = server.json("GET", "/stats")
    assert status == 200 and stats["queries_served"] == before + 3
    assert stats["codes"] == 500 and stats["bits"] == 16 and stats["kind"] == "linear"
    assert stats["kernel"] in available_kernels() and stats["model"]["method"] == "lsh"
    lat = stats["latency_ms"]["search"]
    assert lat["n"] >= 1 and 0 < lat["p50"] <= lat["p99"]
    status, schema = server.json("GET", "/openapi.json")
    assert status == 200 and {"/search", "/search/image", "/items/{item_id}/image", "/reload"} <= set(schema["paths"])
    status, ctype, page = server.call("GET", "/")
    assert status == 200 and ctype.startswith("text/html") and b"/static/app.js" in page


def test_reload_swaps_the_index_without_failing_requests_in_flight(files, tmp_path):
    live = tmp_path / "live.index.h5"
    shutil.copy(files["index"], live)
    dhash("index", files["q"], "-o", tmp_path / "other.index.h5")  # 200 codes instead of 500
    q = read_code_file(files["q"])
    payload = {"codes": [c.tobytes().hex() for c in q.codes[:20]], "k": 5}
    answers = {}
    for name, path in (("old", files["index"]), ("new", tmp_path / "other.index.h5")):
        rows = query_rows(path, "--codes", files["q"], "--first", 20, "-k", 5)
        answers[name] = [rows[n] for n in range(20)]
    srv = Server(live)
    try:
        seen, failures, stop = [], [], threading.Event()

        def hammer() -> None:
            while not stop.is_set():
                status, res = srv.json("POST", "/search", payload)
                if status != 200:
                    failures.append(res)
                    continue
                got = [hits_rows(h) for h in res["results"]]
                seen.append("old" if got == answers["old"] else "new" if got == answers["new"] else "mixed")

        workers = [threading.Thread(target=hammer) for _ in range(3)]
        for w in workers:
            w.start()
        time.sleep(1.0)
        shutil.copy(tmp_path / "other.index.h5", tmp_path / "staged.h5")
        os.replace(tmp_path / "staged.h5", live)  # replaced on disk the way atomic_path writes
        status, res = srv.json("POST", "/reload")
        assert status == 200 and res == {"reloaded": True, "codes": 200, "bits": 16, "reloads": 1}
        time.sleep(1.0)
        stop.set()
        for w in workers:
            w.join()
        assert not failures and "mixed" not in seen, (failures[:3], seen.count("mixed"))
        assert seen.count("old") > 0 and seen.count("new") > 0 and seen[-1] == "new"
        # a broken file: 409, and the index loaded before goes on serving
        live.write_bytes(b"not an HDF5 file")
        status, res = srv.json("POST", "/reload")
        assert status == 409 and "still serving the old index" in res["error"] and str(live) in res["error"]
        assert srv.json("GET", "/health") == (200, {"status": "ok", "codes": 200})
        # no model: image search is refused, code search works
        status, res = srv.json("POST", "/search/image?k=3", raw=b"x", headers={"Content-Type": "image/png"})
        assert status == 409 and "--model" in res["error"]
    finally:
        srv.close()


def test_watch_reloads_when_the_file_changes(files, tmp_path):
    live = tmp_path / "live.index.h5"
    shutil.copy(files["index"], live)
    srv = Server(live, "--watch")
    try:
        dhash("index", files["q"], "-o", tmp_path / "other.index.h5")
        os.replace(tmp_path / "other.index.h5", live)
        deadline = time.time() + 30
        while srv.json("GET", "/health")[1]["codes"] != 200 and time.time() < deadline:
            time.sleep(0.2)
        status, stats = srv.json("GET", "/stats")
        assert stats["codes"] == 200 and stats["reloads"] == 1
    finally:
        srv.close()


def test_serve_cli_errors_are_one_line(files, tmp_path):
    out = dhash("serve", tmp_path / "missing.index.h5", code=1)
    assert out.strip() == f"Error: {tmp_path / 'missing.index.h5'}: no such file"
    out = dhash("serve", files["db"], code=1)
    assert "not a dhash index file" in out and "Traceback" not in out
    dhash("encode", "fashion-mnist", "--model", files["model"], "--split", "query", "-o", tmp_path / "q.h5")
    other = tmp_path / "lsh8"
    dhash("train", "--data", "fashion-mnist", "--method", "lsh", "--bits", "8", "--protocol", "per-class",
          "--queries-per-class", "2", "--train-per-class", "5", "--threads", "1", "-o", other)
    out = dhash("serve", files["index"], "--model", other / "model.pt", code=1)
    assert "holds 16-bit codes but the model gives 8-bit codes" in out


CHROME_OPTIONS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync")


def chromium(tmp_path: Path) -> webdriver.Chrome:
    """Headless Chromium (Debian's chromium + chromium-driver) with its profile in ``tmp_path``."""
    options = webdriver.ChromeOptions()
    for flag in CHROME_OPTIONS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    options.add_argument("--window-size=1280,900")
    options.binary_location = "/usr/bin/chromium"
    return webdriver.Chrome(options=options, service=ChromeService("/usr/bin/chromedriver"))


def images_loaded(driver: webdriver.Chrome) -> bool:
    return all(driver.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", img)
               for img in driver.find_elements(By.CSS_SELECTOR, "#grid img"))


def test_page_in_headless_chromium_shows_k_results(server, files, fashion, tmp_path):
    driver = chromium(tmp_path)
    try:
        driver.get(server.url + "/")
        wait = WebDriverWait(driver, 60)
        wait.until(lambda d: "codes of 16 bits" in d.find_element(By.ID, "stats").text)
        db = read_code_file(files["db"])
        query = tmp_path / "bag.png"  # a database bag: the page should find bags around it
        bag = next(i for i, labels in enumerate(db.labels) if labels[8])
        query.write_bytes(png_bytes(fashion.images[fashion.ids.index(db.ids[bag])]))
        driver.find_element(By.ID, "label").send_keys("Bag")
        driver.find_element(By.ID, "file").send_keys(str(query))
        tiles = wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#grid figure.result") or None)
        wait.until(images_loaded)
        assert len(tiles) == K and not driver.find_element(By.ID, "error").is_displayed()
        captions = [t.text for t in tiles]
        assert captions[0].startswith("#1 · d=") and all(f"#{r + 1} · d=" in c for r, c in enumerate(captions))
        framed = [t.get_attribute("class") for t in tiles]
        assert all("relevant" in f or "irrelevant" in f for f in framed)
        assert db.ids[bag] in " ".join(captions)  # the item itself is among its nearest
        shot = tmp_path / "serve-page.png"
        driver.save_screenshot(str(shot))
        assert Image.open(shot).size[0] > 0
        if os.environ.get("DHASH_SCREENSHOT"):  # a copy to look at, where the caller wants one
            shutil.copy(shot, os.environ["DHASH_SCREENSHOT"])
        driver.find_element(By.ID, "random").click()
        wait.until(lambda d: d.find_element(By.ID, "results-title").text.startswith(f"{K} nearest")
                   and d.find_element(By.ID, "query-caption").text != query.name)
        assert len(driver.find_elements(By.CSS_SELECTOR, "#grid figure.result")) == K
    finally:
        driver.quit()


# --- Milvus backend: `dhash serve --uri FILE --collection NAME` over a real Milvus Lite file -------------

def dhash_process(*args) -> str:
    """`dhash ARGS` in its own process: a Milvus Lite file is open in one process at a time, so the test
    process must not open it while the server has it."""
    done = subprocess.run([*DHASH, *map(str, args)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def rows_by_query(output: str) -> dict[int, list[tuple[int, str, int]]]:
    out: dict[int, list] = {}
    for row in json.loads(output):
        out.setdefault(row["query"], []).append((row["index"], row["id"], row["distance"]))
    return out


@pytest.fixture(scope="module")
def milvus(files):
    """The database codes exported to a Milvus Lite file; `dhash query --uri` answers taken before the
    server (which then holds the file) starts."""
    pytest.importorskip("milvus_lite")
    uri = files["root"] / "codes.db"
    dhash_process("export", files["db"], "--to", "milvus", "--uri", uri, "--collection", "lsh16")
    query = ("query", "--uri", uri, "--collection", "lsh16", "--codes", files["q"], "--format", "json")
    expected = {"k": rows_by_query(dhash_process(*query, "-k", K)),
                "radius": rows_by_query(dhash_process(*query, "--first", 20, "--radius", 2))}
    srv = Server("--uri", uri, "--collection", "lsh16", "--model", files["model"], log_dir=files["root"])
    yield srv, expected
    srv.close()


def assert_knn_matches(hits: dict, want: list[tuple[int, str, int]], query: np.ndarray, db) -> None:
    """Equal distances; equal ids below the k-th distance; at it, ids of codes truly at that distance."""
    got = hits_rows(hits)
    assert [d for _, _, d in got] == [d for _, _, d in want]
    kth = want[-1][2]
    assert [r for r in got if r[2] < kth] == [r for r in want if r[2] < kth]
    true = np.bitwise_count(np.bitwise_xor(db.codes[hits["indices"]], query)).sum(axis=1)
    assert true.tolist() == hits["distances"] and len(set(hits["indices"])) == len(hits["indices"])
    assert hits["ids"] == [db.ids[i] for i in hits["indices"]]
    assert hits["labels"] == [np.flatnonzero(db.labels[i]).tolist() for i in hits["indices"]]


def test_milvus_search_equals_dhash_query_uri(milvus, files):
    srv, expected = milvus
    q, db = read_code_file(files["q"]), read_code_file(files["db"])
    hexes = [c.tobytes().hex() for c in q.codes]
    status, res = srv.json("POST", "/search", {"codes": hexes, "k": K})
    assert status == 200 and res["bits"] == 16 and len(res["results"]) == len(q)
    assert res["classes"][1] == "Trouser"  # class names kept in the collection's description
    in_memory = query_rows(files["index"], "--codes", files["q"], "-k", K)
    ties = 0
    for n, hits in enumerate(res["results"]):
        assert_knn_matches(hits, expected["k"][n], q.codes[n], db)
        assert hits["distances"] == [d for _, _, d in in_memory[n]]  # the same as dhash's own index
        true = np.bitwise_count(np.bitwise_xor(db.codes, q.codes[n])).sum(axis=1)
        ties += int((true <= hits["distances"][-1]).sum() > K)
    assert ties > len(q) // 2  # 16-bit codes: most queries tie at the k-th distance, where ids may differ
    bits = np.unpackbits(q.codes[:20], axis=1, count=16, bitorder="little").tolist()
    status, res = srv.json("POST", "/search", {"codes": bits, "radius": 2})
    assert status == 200 and [hits_rows(h) for h in res["results"]] == [expected["radius"].get(n, []) for n in range(20)]
    assert sum(len(h["indices"]) for h in res["results"]) > 0


def test_milvus_image_search_items_stats_and_errors(milvus, files, fashion):
    srv, _ = milvus
    db = read_code_file(files["db"])
    image = png_bytes(fashion.images[fashion.ids.index(db.ids[7])])
    status, res = srv.json("POST", f"/search/image?k={K}", raw=image, headers={"Content-Type": "image/png"})
    assert status == 200 and res["code"] == db.codes[7].tobytes().hex()
    status, by_code = srv.json("POST", "/search", {"codes": [res["code"]], "k": K})
    assert res["results"] == by_code["results"] and 7 in res["results"][0]["indices"]
    status, item = srv.json("GET", "/items/random")
    assert status == 200 and item["id"] == db.ids[item["index"]]
    assert item["code"] == db.codes[item["index"]].tobytes().hex()
    assert item["labels"] == np.flatnonzero(db.labels[item["index"]]).tolist()
    status, ctype, data = srv.call("GET", f"/items/{db.ids[3]}/image")  # the data set named in the collection
    assert status == 200 and ctype == "image/png"
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(data))), fashion.images[fashion.ids.index(db.ids[3])])
    for path in ("/items/no-such-id/image", "/items/%2e%2e/%2e%2e/etc/passwd/image", '/items/%22%20or%201/image'):
        status, ctype, data = srv.call("GET", path)
        assert status == 404 and b"root:" not in data, (path, status)
    status, stats = srv.json("GET", "/stats")
    assert status == 200 and (stats["backend"], stats["collection"], stats["codes"], stats["bits"]) == \
        ("milvus", "lsh16", 500, 16)
    assert stats["kernel"] is None and stats["dataset"] == "fashion-mnist" and stats["model"]["bits"] == 16
    cases = {
        "wrong length": (srv.json("POST", "/search", {"codes": ["a3f0c1"], "k": 3}), 400, "4 hex digits"),
        "wrong bits": (srv.json("POST", "/search", {"codes": [[0, 1, 1]], "k": 3}), 400, "16 bits"),
        "k = 0": (srv.json("POST", "/search", {"codes": ["a3f0"], "k": 0}), 422, "k"),
        "k < 0": (srv.json("POST", "/search", {"codes": ["a3f0"], "k": -4}), 422, "k"),
        "k and radius": (srv.json("POST", "/search", {"codes": ["a3f0"], "k": 1, "radius": 1}), 400, "exactly one"),
        "non-image": (srv.json("POST", "/search/image?k=3", raw=b"text, not an image" * 10,
                               headers={"Content-Type": "image/png"}), 415, "not an image"),
    }
    for name, ((status, body), want, text) in cases.items():
        assert status == want and text in body["error"], (name, status, body)
    assert srv.json("GET", "/health") == (200, {"status": "ok", "codes": 500})


def test_milvus_lite_file_held_by_the_server_is_one_error_line(milvus, files):
    done = subprocess.run([*DHASH, "query", "--uri", files["root"] / "codes.db", "--collection", "lsh16",
                           "--codes", files["q"], "-k", "3"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "open in one process at a time" in done.stderr and "Traceback" not in done.stderr
    assert milvus[0].json("GET", "/health")[0] == 200


def test_milvus_reload_reconnects_without_failing_requests(milvus, files):
    srv, expected = milvus
    q = read_code_file(files["q"])
    payload = {"codes": [c.tobytes().hex() for c in q.codes[:5]], "k": 3}
    failures, done, stop = [], [], threading.Event()

    def hammer() -> None:
        while not stop.is_set():
            status, res = srv.json("POST", "/search", payload)
            (done if status == 200 else failures).append(res)

    workers = [threading.Thread(target=hammer) for _ in range(2)]
    for w in workers:
        w.start()
    time.sleep(0.5)
    status, res = srv.json("POST", "/reload")
    reloads = res.get("reloads")
    time.sleep(0.5)
    stop.set()
    for w in workers:
        w.join()
    assert status == 200 and res["codes"] == 500 and reloads >= 1 and not failures and len(done) > 0
    assert [[d for d in h["distances"]] for h in done[-1]["results"]] == \
        [[d for _, _, d in expected["k"][n][:3]] for n in range(5)]


def test_serve_milvus_cli_errors(files, tmp_path):
    for args, text in ((["--uri", tmp_path / "x.db"], "needs both --uri URI and --collection NAME"),
                       ([files["index"], "--uri", tmp_path / "x.db", "--collection", "c"], "not both"),
                       (["--uri", tmp_path / "x.db", "--collection", "c", "--watch"], "POST /reload"),
                       ([], "give an index file, or --uri")):
        out = dhash("serve", *args, code=2)
        assert text in out and "Traceback" not in out
    pytest.importorskip("milvus_lite")
    done = subprocess.run([*DHASH, "serve", "--uri", tmp_path / "x.db", "--collection", "none",
                           "--port", str(free_port())], capture_output=True, text=True, timeout=120)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1 and len(lines) == 1, done.stderr
    assert lines[0].startswith("Error: ") and "no collection 'none'" in lines[0]


def test_milvus_page_in_headless_chromium_shows_a_random_item_and_k_results(milvus, files, tmp_path):
    srv, _ = milvus
    driver = chromium(tmp_path)
    try:
        driver.get(srv.url + "/")
        wait = WebDriverWait(driver, 60)
        wait.until(lambda d: "codes of 16 bits · milvus BIN_FLAT index · fashion-mnist" in d.find_element(By.ID, "stats").text)
        driver.find_element(By.ID, "random").click()
        wait.until(lambda d: d.find_element(By.ID, "results-title").text.startswith(f"{K} nearest"))
        wait.until(images_loaded)
        tiles = driver.find_elements(By.CSS_SELECTOR, "#grid figure.result")
        assert len(tiles) == K and not driver.find_element(By.ID, "error").is_displayed()
        assert all("relevant" in t.get_attribute("class") for t in tiles)  # framed: labels came from Milvus
        assert len(driver.find_elements(By.CSS_SELECTOR, "#grid img")) == K
        assert driver.execute_script("return document.getElementById('query-image').naturalWidth") > 0
        driver.save_screenshot(str(tmp_path / "serve-milvus-page.png"))
    finally:
        driver.quit()
