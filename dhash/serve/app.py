"""The ASGI app of ``dhash serve``: the JSON API (OpenAPI at /docs, /openapi.json) and the page at ``/``.

Every error is a JSON object ``{"error": "one line"}`` with a 4xx status (502 when Milvus fails),
and the server goes on serving. Searches and image encoding run in the thread pool (the search
core and torch release the GIL), so concurrent requests use every core; a small search of an
in-memory index with no other one running runs on the event loop, which saves a thread switch
(most of a 1M-code search's time); a Milvus search, a call to another process, never does. Each
request takes the current backend once, so ``POST /reload`` swaps it without disturbing requests
in flight.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from .. import __version__
from ..errors import DHashError
from ..search.codes import BITORDER, check_codes
from .backend import Reloadable
from .items import ItemImages, ItemNotFound
from .uploads import MAX_PIXELS, MAX_UPLOAD_BYTES, RequestError, decode_image

STATIC = Path(__file__).parent / "static"
MAX_K = 10_000          # neighbours per query
MAX_QUERIES = 1_000     # codes per request
MAX_RESULTS = 100_000   # results in one response: k x queries must stay below; radius results are cut there
MULTIPART_SLACK = 64 * 1024  # form boundaries and headers around the image
INLINE_QUERIES = 8  # a search of this many codes, when no other is running, runs on the event loop


@dataclass
class Stats:
    """Requests and query codes served, and the latency of the last ``window`` searches per endpoint."""

    window: int = 10_000
    started: float = field(default_factory=time.time)
    queries: int = 0
    requests: dict[str, int] = field(default_factory=dict)
    latency: dict[str, deque] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, endpoint: str, seconds: float, queries: int) -> None:
        with self.lock:
            self.queries += queries
            self.requests[endpoint] = self.requests.get(endpoint, 0) + 1
            self.latency.setdefault(endpoint, deque(maxlen=self.window)).append(seconds)

    def summary(self) -> dict[str, Any]:
        with self.lock:
            latency = {name: _percentiles(list(times)) for name, times in self.latency.items()}
            return {"queries_served": self.queries, "requests": dict(self.requests), "latency_ms": latency,
                    "uptime_s": round(time.time() - self.started, 1)}


def _percentiles(times: list[float]) -> dict[str, float]:
    ms = np.asarray(times) * 1e3
    return {"n": len(ms), "mean": round(float(ms.mean()), 3), "p50": round(float(np.percentile(ms, 50)), 3),
            "p99": round(float(np.percentile(ms, 99)), 3)}


@dataclass
class Service:
    """What the app serves: the reloadable backend, the model for uploads (or None), the database images."""

    backends: Reloadable
    encoder: Any = None
    items: ItemImages = field(default_factory=ItemImages)
    max_upload: int = MAX_UPLOAD_BYTES
    max_pixels: int = MAX_PIXELS
    stats: Stats = field(default_factory=Stats)
    model_lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.transform = None
        if self.encoder is not None:
            from ..learn.data import build_transform

            self.transform = build_transform(self.encoder.input_spec, train=False)
            if self.transform is None:
                raise DHashError(f"{self.encoder.path}: the model encodes feature vectors, not images")

    def encode(self, image: Any) -> np.ndarray:
        """The packed code (1 × bytes) of a decoded image."""
        x = self.transform(image)[None]
        with self.model_lock:
            return self.encoder.encode_tensor(x)


class SearchRequest(BaseModel):
    """Query codes and exactly one of ``k`` and ``radius``."""

    codes: list[str | list[int]] = Field(
        min_length=1, max_length=MAX_QUERIES,
        description=f"Query codes: hex strings of the packed bytes (bit j at byte j//8, position j%8, "
                    f"{BITORDER} bit order, as in code files) or lists of 0/1 of length bits.",
        examples=[["a3f0c1d2e4b59687"]])
    k: int | None = Field(None, ge=1, le=MAX_K, description="Number of nearest neighbours.")
    radius: int | None = Field(None, ge=0, description="Return every code within this Hamming distance.")


class Hits(BaseModel):
    ids: list[str] | None
    indices: list[int]
    distances: list[int]
    labels: list[list[int]] | None = Field(description="Class indices of each result (see `classes`).")
    truncated: int = Field(0, description=f"Radius results left out: a response holds at most {MAX_RESULTS:,} "
                                          f"results, shared equally by its queries.")


class SearchResponse(BaseModel):
    bits: int
    k: int | None
    radius: int | None
    classes: list[str]
    results: list[Hits]
    took_ms: float


def parse_codes(codes: Sequence[str | list[int]], bits: int) -> np.ndarray:
    """Packed uint8 codes from hex strings / 0-1 lists; a wrong length or a bad digit names the code."""
    width = (bits + 7) // 8
    out = np.zeros((len(codes), width), dtype=np.uint8)
    for n, code in enumerate(codes):
        if isinstance(code, str):
            try:
                raw = bytes.fromhex(code)
            except ValueError:
                raise DHashError(f"codes[{n}]: not a hex string") from None
            if len(raw) != width:
                raise DHashError(f"codes[{n}]: {bits}-bit codes are {2 * width} hex digits, got {len(code)}")
            out[n] = np.frombuffer(raw, dtype=np.uint8)
        else:
            if len(code) != bits or any(b not in (0, 1) for b in code):
                raise DHashError(f"codes[{n}]: expected a list of {bits} bits (0 or 1), got {len(code)} values")
            out[n] = np.packbits(np.asarray(code, dtype=np.uint8), bitorder=BITORDER)
    try:
        return check_codes(out, bits)
    except DHashError as exc:
        raise DHashError(f"codes: {exc}") from None


def _hits(backend: Any, dist: np.ndarray, idx: np.ndarray, truncated: int = 0) -> dict[str, Any]:
    keep = idx >= 0
    rows = idx[keep].tolist()
    return {"ids": backend.ids_of(rows), "indices": rows, "distances": dist[keep].tolist(),
            "labels": backend.labels_of(rows), "truncated": truncated}


def run_search(backend: Any, codes: np.ndarray, k: int | None, radius: int | None) -> list[dict[str, Any]]:
    """The results of each query code as JSON-ready dicts."""
    if (k is None) == (radius is None):
        raise DHashError("give exactly one of k and radius")
    if k is not None:
        if k * len(codes) > MAX_RESULTS:
            raise DHashError(f"k x queries = {k * len(codes):,} results is over the limit of {MAX_RESULTS:,} "
                             f"per request; send fewer codes or a smaller k")
        dist, idx = backend.search(codes, k)
        return [_hits(backend, d, i) for d, i in zip(dist, idx)]
    lims, dist, idx = backend.range_search(codes, radius)
    out, share = [], MAX_RESULTS // len(codes)
    for a, b in zip(lims[:-1].tolist(), lims[1:].tolist()):
        end = min(b, a + share)
        out.append(_hits(backend, dist[a:end], idx[a:end], b - end))
    return out


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def search_request(body: bytes, content_type: str) -> SearchRequest:
    """The body of ``POST /search``, parsed and validated in one pass (pydantic's JSON parser): the
    lean path of the most frequent request, without FastAPI's per-request dependency solving."""
    if "json" not in content_type:
        raise RequestError(422, "the body must be JSON, sent with Content-Type: application/json")
    try:
        return SearchRequest.model_validate_json(body)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(include_url=False)) from None


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors()[:3]:
        if err.get("type") == "json_invalid":
            parts.append(f"malformed JSON: {err.get('ctx', {}).get('error', '')}")
            continue
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
        parts.append(f"{where}: {err.get('msg')}" if where else str(err.get("msg")))
    return "; ".join(parts) or "invalid request"


class BodyLimit:
    """ASGI middleware: a request body over ``limit`` bytes gets 413 (from its Content-Length, or as
    soon as the streamed body passes the limit) and never reaches the app in full."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app, self.limit = app, limit

    def _refusal(self, size: int) -> JSONResponse:
        return _error(413, f"request body of {size:,} bytes or more is over the limit of {self.limit:,} bytes")

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length", b"")
        if length.isdigit() and int(length) > self.limit:
            return await self._refusal(int(length))(scope, receive, send)
        seen, refused = 0, False

        async def limited_receive() -> dict:
            nonlocal seen, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    refused = True
                    await self._refusal(seen)(scope, receive, send)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: dict) -> None:
            if not refused:
                await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not refused:  # after a refusal the app only fails because the body was cut off
                raise


async def uploaded_image(request: Request, limit: int) -> tuple[bytes, str]:
    """(image bytes, name) from a multipart form's ``image`` field or from a raw image body."""
    content_type = request.headers.get("content-type", "")
    body = await request.body()  # BodyLimit has capped it at limit + MULTIPART_SLACK
    if not content_type.startswith("multipart/form-data"):
        if len(body) > limit:
            raise RequestError(413, f"upload of {len(body):,} bytes is over the limit of {limit:,} bytes")
        return body, "upload"

    async def replay() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        form = await Request(request.scope, replay).form(max_files=1, max_fields=8)
    except Exception as exc:  # noqa: BLE001 - whatever the multipart parser rejects
        raise RequestError(400, f"malformed multipart form ({' '.join(str(exc).split())[:200]})") from None
    upload = form.get("image")
    if not isinstance(upload, UploadFile):
        raise RequestError(400, "the form needs a file field named 'image'")
    data = await upload.read()
    if len(data) > limit:
        raise RequestError(413, f"{upload.filename}: {len(data):,} bytes is over the limit of {limit:,} bytes")
    return data, upload.filename or "upload"


def create_app(service: Service) -> FastAPI:
    """The FastAPI app over ``service``."""
    app = FastAPI(title="dhash serve", version=__version__,
                  description="Exact Hamming search over a dhash index, by code or by image.")
    app.state.service = service
    app.add_middleware(BodyLimit, limit=service.max_upload + MULTIPART_SLACK)

    @app.exception_handler(DHashError)
    async def dhash_error(request: Request, exc: DHashError) -> JSONResponse:
        return _error(getattr(exc, "status", 400), str(exc))

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(422, _validation_message(exc))

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return _error(exc.status_code, str(exc.detail))

    @app.exception_handler(ItemNotFound)
    async def no_item(request: Request, exc: ItemNotFound) -> JSONResponse:
        return _error(404, str(exc))

    def respond(endpoint: str, started: float, k: int | None, radius: int | None, backend: Any,
                results: list[dict[str, Any]], extra: dict[str, Any] | None = None) -> JSONResponse:
        took = time.perf_counter() - started
        service.stats.record(endpoint, took, len(results))
        return JSONResponse({"bits": backend.bits, "k": k, "radius": radius, "classes": backend.classes,
                             "results": results, "took_ms": round(took * 1e3, 3), **(extra or {})})

    offloaded = 0  # searches now running in the thread pool

    @app.post("/search", response_model=SearchResponse, summary="Search by codes", openapi_extra={"requestBody": {
        "required": True, "content": {"application/json": {"schema": SearchRequest.model_json_schema()}}}})
    async def search(request: Request) -> JSONResponse:
        """The k nearest database codes (or all within ``radius``) of each query code, nearest first,
        ties by index."""
        nonlocal offloaded
        started = time.perf_counter()
        req = search_request(await request.body(), request.headers.get("content-type", ""))
        backend = service.backends.current
        codes = parse_codes(req.codes, backend.bits)
        if offloaded == 0 and len(codes) <= INLINE_QUERIES and not backend.blocking:  # alone: no hop to a pool thread
            results = run_search(backend, codes, req.k, req.radius)
        else:  # others are searching: run beside them on another core
            offloaded += 1
            try:
                results = await run_in_threadpool(run_search, backend, codes, req.k, req.radius)
            finally:
                offloaded -= 1
        return respond("search", started, req.k, req.radius, backend, results)

    @app.post("/search/image", response_model=SearchResponse, summary="Search by an uploaded image",
              openapi_extra={"requestBody": {"content": {
                  "multipart/form-data": {"schema": {"type": "object", "properties": {
                      "image": {"type": "string", "format": "binary"}}}},
                  "image/*": {"schema": {"type": "string", "format": "binary"}}}}})
    async def search_image(request: Request, k: int | None = Query(None, ge=1, le=MAX_K),
                           radius: int | None = Query(None, ge=0)) -> JSONResponse:
        """Encode the image (multipart field ``image``, or the raw body) with the model, then search
        as ``/search``; the response adds the query's ``code`` (hex)."""
        started = time.perf_counter()
        if service.encoder is None:
            raise RequestError(409, "this server was started without --model, so it cannot encode images")
        if (k is None) == (radius is None):
            raise DHashError("give exactly one of k and radius")
        data, name = await uploaded_image(request, service.max_upload)

        def work() -> tuple[Any, np.ndarray, list[dict[str, Any]]]:
            code = service.encode(decode_image(data, name, service.max_pixels))
            backend = service.backends.current
            return backend, code, run_search(backend, code, k, radius)

        backend, code, results = await run_in_threadpool(work)
        return respond("search_image", started, k, radius, backend, results, {"code": code[0].tobytes().hex()})

    @app.get("/items/random", summary="A random database item")
    def random_item() -> dict[str, Any]:
        """A database item drawn at random: its index, id, labels and code (hex), to search with."""
        return service.backends.current.random_item()

    @app.get("/items/{item_id:path}/image", summary="A database image", response_class=Response,
             responses={200: {"content": {"image/png": {}}}})
    def item_image(item_id: str) -> Response:
        """The image of the database item with this id (as a PNG, at most 256 pixels a side)."""
        png = service.items.png(service.backends.current, item_id)
        return Response(png, media_type="image/png", headers={"Cache-Control": "max-age=3600"})

    @app.get("/health", summary="Liveness")
    def health() -> dict[str, Any]:
        return {"status": "ok", "codes": service.backends.current.ntotal}

    @app.get("/stats", summary="Index, kernel, queries served and latency")
    def stats() -> dict[str, Any]:
        holder = service.backends
        model = None if service.encoder is None else {"path": str(service.encoder.path), "bits": service.encoder.bits,
                                                      "method": service.encoder.record.get("method")}
        return {**holder.current.describe(), "model": model, "reloads": holder.reloads,
                "loaded_at": holder.loaded_at, **service.stats.summary()}

    @app.post("/reload", summary="Load the index file again")
    async def reload() -> dict[str, Any]:
        """Read the index file anew and swap it in; searches in flight finish on the old one.
        A file that cannot be loaded leaves the old index serving (409)."""
        try:
            backend = await run_in_threadpool(service.backends.reload)
        except DHashError as exc:
            raise RequestError(409, f"reload failed, still serving the old index: {exc}") from None
        return {"reloaded": True, "codes": backend.ntotal, "bits": backend.bits, "reloads": service.backends.reloads}

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app
