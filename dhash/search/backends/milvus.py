"""Milvus collections of dhash codes (``pip install 'dhash[milvus]'``): export and search.

A collection has four fields: ``id`` (VARCHAR primary key: the code file's ids), ``row`` (INT64:
the code's position in the collection, 0, 1, ... in export order; ``dhash query`` shows it as
``index``), ``code`` (BINARY_VECTOR of ``8·ceil(bits/8)`` bits: the packed code, zero padding
bits, so Hamming distances are unchanged) and ``labels`` (VARCHAR: the classes of the code's
multi-hot labels as ``",2,7,"``, for filtered search with ``labels like "%,2,%"``; an ARRAY field
made Milvus Lite's inserts 20 times slower). The vector index is ``BIN_FLAT`` with the
``HAMMING`` metric — an exact scan, the same distances as dhash's own search; ties at the k-th
distance may be broken differently (results are re-ordered by (distance, row) per query). The
collection's description holds ``{"dhash": 1, "bits": B, "classes": C}`` and, where the code file
has them, ``"class_names"`` and ``"dataset"`` (where its images are: for ``dhash serve``).

``uri`` is a local file path (Milvus Lite, embedded: nothing to start) or ``http://HOST:PORT``
of a Milvus server or cluster (its proxy), with ``token`` for one that has authentication.
Milvus answers at most 16,384 results per query (``k`` and radius searches alike).
"""
from __future__ import annotations

import json
import logging
import os
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np

from ...errors import DHashError
from ..codes import CodeFile, check_bits, check_codes
from . import canonical_range, canonical_topk, no_kernel

META_FORMAT = 1
MAX_RESULTS = 16384  # Milvus' topk limit
QUERY_BATCH = 256
INSERT_BATCH = 10_000
MAX_ID_LENGTH = 65_535


class MilvusFailure(DHashError):
    """Milvus could not be reached or failed to answer (the request itself was valid)."""


def _pymilvus() -> Any:
    try:
        import pymilvus
    except ImportError:
        raise DHashError("Milvus support is not installed: pip install 'dhash[milvus]'") from None
    logging.getLogger("pymilvus").setLevel(logging.CRITICAL)  # errors become one DHashError line
    return pymilvus


def connect(uri: str, token: str | None = None, timeout: float = 10.0) -> Any:
    """A ``MilvusClient`` for ``uri``: a Milvus Lite file or ``http(s)://HOST:PORT``."""
    pymilvus = _pymilvus()
    remote = uri.startswith(("http://", "https://", "tcp://", "grpc://"))
    if not remote:
        if os.path.isdir(uri):
            raise DHashError(f"{uri}: is a folder; a Milvus Lite URI is a file path such as codes.db")
        try:
            with warnings.catch_warnings():  # its pkg_resources deprecation notice, on every command
                warnings.simplefilter("ignore", UserWarning)
                import milvus_lite  # noqa: F401  (pymilvus starts it for a file URI)
        except ImportError:
            raise DHashError(f"{uri}: Milvus Lite is not installed: pip install 'dhash[milvus]'") from None
        uri = os.path.abspath(uri)
    root = logging.getLogger()  # Milvus Lite logs its start-up failures there: they become the one line below

    def drop(record: logging.LogRecord) -> bool:
        return False

    root.addFilter(drop)
    try:
        return pymilvus.MilvusClient(uri=uri, token=token or "", timeout=timeout)
    except Exception as exc:  # pymilvus raises MilvusException and grpc errors
        busy = "" if remote else "; a Milvus Lite file is open in one process at a time: is another using it?"
        raise MilvusFailure(f"{uri}: cannot reach Milvus ({_message(exc)}{busy})") from None
    finally:
        root.removeFilter(drop)


def _message(exc: BaseException) -> str:
    text = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return " ".join(str(text).split())


def _meta(client: Any, uri: str, collection: str) -> dict[str, Any]:
    """The dhash metadata of an existing collection, checked."""
    if not client.has_collection(collection):
        names = ", ".join(client.list_collections()) or "none"
        raise DHashError(f"{uri}: no collection {collection!r} (collections there: {names})")
    desc = client.describe_collection(collection)
    try:
        meta = json.loads(desc.get("description") or "")
        bits = check_bits(int(meta["bits"]))
    except (ValueError, KeyError, TypeError):
        raise DHashError(f"{uri}: collection {collection!r} was not written by dhash export "
                         f"(no dhash metadata in its description)") from None
    if meta.get("dhash") != META_FORMAT:
        raise DHashError(f"{uri}: collection {collection!r} has dhash metadata version {meta.get('dhash')!r}, "
                         f"this dhash reads {META_FORMAT}")
    meta["bits"] = bits
    return meta


def _count(client: Any, collection: str) -> int:
    return int(client.query(collection, filter="", output_fields=["count(*)"])[0]["count(*)"])


def _description(data: CodeFile, classes: int) -> str:
    """The collection's description: dhash metadata, with the class names and data set when known."""
    meta: dict[str, Any] = {"dhash": META_FORMAT, "bits": data.bits, "classes": classes}
    names = data.attrs.get("classes")
    if names is not None and len(names) == classes:
        meta["class_names"] = [str(c) for c in names]
    if data.attrs.get("dataset") is not None:
        meta["dataset"] = str(data.attrs["dataset"])
    return json.dumps(meta)


def _create(client: Any, collection: str, data: CodeFile, classes: int) -> None:
    pymilvus = _pymilvus()
    DataType = pymilvus.DataType
    bits = data.bits
    schema = pymilvus.MilvusClient.create_schema(
        auto_id=False, enable_dynamic_field=False, description=_description(data, classes))
    schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=MAX_ID_LENGTH)
    schema.add_field("row", DataType.INT64)
    schema.add_field("code", DataType.BINARY_VECTOR, dim=8 * ((bits + 7) // 8))
    schema.add_field("labels", DataType.VARCHAR, max_length=MAX_ID_LENGTH)
    params = client.prepare_index_params()
    params.add_index("code", index_type="BIN_FLAT", metric_type="HAMMING")
    client.create_collection(collection, schema=schema, index_params=params)


def _check_export(data: CodeFile, path: str) -> list[str]:
    if data.ids is None:
        raise DHashError(f"{path}: has no ids; Milvus rows need them as primary keys (write them with dhash encode)")
    ids = [str(i) for i in data.ids]
    if len(set(ids)) != len(ids):
        seen: set[str] = set()
        dup = next(i for i in ids if i in seen or seen.add(i))
        raise DHashError(f"{path}: id {dup!r} occurs more than once; Milvus primary keys must be unique")
    longest = max((len(i.encode("utf-8")) for i in ids), default=0)
    if longest > MAX_ID_LENGTH:
        raise DHashError(f"{path}: an id has {longest} bytes, Milvus allows {MAX_ID_LENGTH}")
    return ids


def _label_text(multi_hot: np.ndarray | None) -> str:
    """The ``labels`` field: the classes set in one multi-hot row, as ``",2,7,"`` (``","`` for none)."""
    classes = [] if multi_hot is None else np.flatnonzero(multi_hot).tolist()
    return ",".join(["", *map(str, classes), ""])


def _label_list(text: str) -> list[int]:
    """The classes of a ``labels`` field (``",2,7,"`` → ``[2, 7]``)."""
    return [int(c) for c in text.split(",") if c]


def _batches(n: int, size: int, label: str, progress: bool) -> Iterator[tuple[int, int]]:
    spans = [(s, min(s + size, n)) for s in range(0, n, size)]
    if not progress:
        yield from spans
        return
    from rich.progress import Progress

    with Progress() as bar:
        task = bar.add_task(label, total=n)
        for start, stop in spans:
            yield start, stop
            bar.advance(task, stop - start)


def export_milvus(data: CodeFile, uri: str, collection: str, mode: str = "create", path: str = "codes",
                  token: str | None = None, batch: int = INSERT_BATCH, progress: bool = False) -> tuple[int, int]:
    """Insert a code file's rows into ``collection``; returns ``(inserted, skipped)``.

    ``mode``: ``create`` (the collection must not exist), ``overwrite`` (drop it first) or
    ``append`` (create it if missing; rows whose id is already there are skipped, so rerunning an
    interrupted export with ``append`` completes it without duplicates). Rows are inserted in
    batches of ``batch``; an interrupted export leaves the batches inserted so far.
    """
    if mode not in ("create", "append", "overwrite"):
        raise DHashError(f"mode: expected create, append or overwrite, got {mode!r}")
    ids = _check_export(data, path)
    classes = 0 if data.labels is None else data.labels.shape[1]
    client = connect(uri, token)
    try:
        exists = client.has_collection(collection)
        if exists and mode == "create":
            raise DHashError(f"{uri}: collection {collection!r} exists ({_count(client, collection):,} codes); "
                             f"use --append to add codes or --overwrite to replace it")
        if exists and mode == "overwrite":
            client.drop_collection(collection)
            exists = False
        if exists:
            meta = _meta(client, uri, collection)
            if meta["bits"] != data.bits:
                raise DHashError(f"{path}: holds {data.bits}-bit codes but collection {collection!r} at {uri} "
                                 f"holds {meta['bits']}-bit codes")
            if classes != int(meta.get("classes", 0)):
                raise DHashError(f"{path}: has {classes} label classes, collection {collection!r} at {uri} "
                                 f"has {meta.get('classes', 0)}")
            next_row = _count(client, collection)
        else:
            _create(client, collection, data, classes)
            next_row = 0
        inserted = 0
        for start, stop in _batches(len(data), batch, f"exporting to {collection}", progress):
            chunk = ids[start:stop]
            have = {r["id"] for r in client.get(collection, ids=chunk, output_fields=["id"])} if exists else set()
            rows = []
            for i in range(start, stop):
                if ids[i] in have:
                    continue
                rows.append({"id": ids[i], "row": next_row, "code": data.codes[i].tobytes(),
                             "labels": _label_text(None if data.labels is None else data.labels[i])})
                next_row += 1
            if rows:
                client.insert(collection, rows)
                inserted += len(rows)
        client.flush(collection)
        return inserted, len(data) - inserted
    except DHashError:
        raise
    except Exception as exc:
        raise DHashError(f"{uri}: Milvus error on collection {collection!r} ({_message(exc)})") from None
    finally:
        client.close()


class MilvusIndex:
    """A dhash collection in Milvus, searched like :class:`dhash.search.index.LinearIndex`.

    ``ids`` and ``row_labels`` map the rows returned by searches so far to their ids (the primary
    keys) and class lists; ``meta`` is the collection's dhash metadata.
    """

    kind = "milvus"

    def __init__(self, uri: str, collection: str, token: str | None = None) -> None:
        self.uri, self.collection = uri, collection
        self._client = connect(uri, token)
        try:
            self.meta = _meta(self._client, uri, collection)
            self.bits = self.meta["bits"]
            self._client.load_collection(collection)
            self._ntotal = _count(self._client, collection)
        except DHashError:
            self._client.close()
            raise
        except Exception as exc:
            self._client.close()
            raise DHashError(f"{uri}: Milvus error on collection {collection!r} ({_message(exc)})") from None
        self.ids: dict[int, str] = {}
        self.row_labels: dict[int, list[int]] = {}
        self.attrs = {"source": f"{uri}#{collection}", "kind": "milvus", "bits": self.bits}

    @property
    def ntotal(self) -> int:
        """Number of codes in the collection (when it was opened)."""
        return self._ntotal

    def close(self) -> None:
        """Close the connection (Milvus Lite: stop the embedded server)."""
        self._client.close()

    def _queries(self, queries: Any, kernel: str | None) -> np.ndarray:
        no_kernel(kernel, "Milvus")
        if isinstance(queries, np.ndarray) and queries.ndim == 1:
            queries = queries[None, :]
        if isinstance(queries, np.ndarray) and queries.ndim == 2 and queries.shape[1] != (self.bits + 7) // 8:
            raise DHashError(f"queries: {queries.shape[1]} bytes per code, but collection {self.collection!r} at "
                             f"{self.uri} holds {self.bits}-bit codes")
        return check_codes(queries, self.bits, "queries")

    def _run(self, queries: np.ndarray, limit: int, params: dict, label: int | None) -> list[list[dict]]:
        hits: list[list[dict]] = []
        flt = "" if label is None else f'labels like "%,{int(label)},%"'
        try:
            for s in range(0, len(queries), QUERY_BATCH):
                hits.extend(self._client.search(
                    self.collection, data=[q.tobytes() for q in queries[s:s + QUERY_BATCH]], limit=limit,
                    anns_field="code", filter=flt, output_fields=["row", "labels"],
                    search_params={"metric_type": "HAMMING", "params": params}))
        except Exception as exc:
            raise MilvusFailure(f"{self.uri}: Milvus search of {self.collection!r} failed ({_message(exc)})") from None
        for row in hits:
            for h in row:
                r = int(h["entity"]["row"])
                self.ids[r] = str(h["id"])
                self.row_labels[r] = _label_list(h["entity"]["labels"])
        return hits

    def _query(self, flt: str, fields: list[str], ids: list[str] | None = None) -> list[dict]:
        try:
            if ids is not None:  # by primary key: no expression to escape
                return self._client.get(self.collection, ids=ids, output_fields=fields)
            return self._client.query(self.collection, filter=flt, output_fields=fields)
        except Exception as exc:
            raise MilvusFailure(f"{self.uri}: Milvus query of {self.collection!r} failed ({_message(exc)})") from None

    def item(self, row: int) -> tuple[str, list[int], bytes] | None:
        """``(id, classes, packed code)`` of the code at ``row``, None if there is none."""
        found = self._query(f"row == {int(row)}", ["id", "labels", "code"])
        if not found:
            return None
        code = found[0]["code"]
        return str(found[0]["id"]), _label_list(found[0]["labels"]), bytes(code[0] if isinstance(code, list) else code)

    def has_id(self, id_: str) -> bool:
        """Whether the collection holds a code with this id."""
        return bool(self._query("", ["row"], ids=[id_]))

    def search(self, queries: np.ndarray, k: int, threads: int | None = None, kernel: str | None = None,
               label: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """k nearest codes (only those with class ``label`` if given): ``(distances, rows)``, padded with -1.

        ``threads`` is not used: the Milvus server decides.
        """
        q = self._queries(queries, kernel)
        if not 1 <= k <= MAX_RESULTS:
            raise DHashError(f"k: Milvus returns 1..{MAX_RESULTS} neighbours per query, got {k}")
        dist = np.full((len(q), k), self.bits + 1, dtype=np.int32)
        idx = np.full((len(q), k), -1, dtype=np.int64)
        if len(q) and self.ntotal:
            for n, row in enumerate(self._run(q, min(k, max(self.ntotal, 1)), {}, label)):
                dist[n, :len(row)] = [int(h["distance"]) for h in row]
                idx[n, :len(row)] = [int(h["entity"]["row"]) for h in row]
        return canonical_topk(dist, idx, self.bits)

    def range_search(self, queries: np.ndarray, radius: int, threads: int | None = None,
                     kernel: str | None = None, label: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Codes within ``radius`` (inclusive): ``(lims, distances, rows)``; at most 16,384 per query."""
        q = self._queries(queries, kernel)
        limit = min(MAX_RESULTS, max(self.ntotal, 1))
        hits = self._run(q, limit, {"radius": int(radius) + 1, "range_filter": -1}, label) if len(q) else []
        for n, row in enumerate(hits):
            if len(row) == limit < self.ntotal:
                raise DHashError(f"--radius {radius}: query {n} has more than {MAX_RESULTS} codes within it, "
                                 f"Milvus returns at most {MAX_RESULTS}; use -k or a smaller radius")
        counts = [len(row) for row in hits] or [0] * len(q)
        lims = np.zeros(len(q) + 1, dtype=np.int64)
        np.cumsum(counts, out=lims[1:])
        dist = [int(h["distance"]) for row in hits for h in row]
        idx = [int(h["entity"]["row"]) for row in hits for h in row]
        return canonical_range(lims, np.array(dist, np.int32), np.array(idx, np.int64))

