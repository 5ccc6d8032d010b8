"""``dhash query``: exact k-NN or radius search of an index file, printed or written as table/JSON/CSV."""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import click
import numpy as np
from rich.console import Console

from dhash.search.codes import CodeFile
from dhash.search.index_file import IndexFile, load_index

EPILOG = """
\b
Examples:
  dhash query database.index.h5 --codes queries.h5 -k 10
  dhash query database.index.h5 --codes queries.h5 --radius 2 --format json -o hits.json
  dhash query database.index.h5 --image cat.jpg --model runs/x/model.pt -k 5
  dhash query database.index.h5 --codes queries.h5 -k 8 --first 6 --grid retrievals.png

\b
One row per result: query (row of the query file, or position of --image), rank (1 = nearest),
index (row of the indexed code file), id (when the code file had ids) and Hamming distance.
Ties are ordered by index. With -k larger than the database the extra ranks are left out.
--format defaults to the extension of -o (.json, .csv), else a table.
"""


def _load_queries(codes: Path | None, images: tuple[str, ...], model: Path | None, device: str,
                  bits: int, index_path: Path) -> tuple[CodeFile, list[str]]:
    """The query codes (with ids, labels and provenance when they come from a code file) and the inputs."""
    from dhash.search.codes import read_code_file
    from dhash.errors import DHashError

    if codes is not None:
        q = read_code_file(codes)
        q_codes, q_bits, inputs = q.codes, q.bits, [str(codes)]
    else:
        from dhash.learn.encode import encode_image_files

        q_codes, q_bits = encode_image_files(model, list(images), device)
        inputs = [str(model), *images]
    if q_bits != bits:
        source = codes if codes is not None else model
        raise DHashError(f"{source}: gives {q_bits}-bit codes but {index_path} indexes {bits}-bit codes")
    return (q if codes is not None else CodeFile(q_codes, q_bits, ids=list(images))), inputs


def _draw_grid(path: Path, q: CodeFile, from_files: bool, loaded: IndexFile, idx: np.ndarray,
               data_dir: str | None) -> None:
    """The retrieval picture: each query and its results, framed by relevance (shared label)."""
    from dhash.errors import DHashError
    from dhash.evaluate.gallery import images_by_id, retrieval_grid

    if q.ids is None or loaded.ids is None:
        raise DHashError("--grid needs ids in the query code file and in the index (as `dhash encode` writes)")
    db_data = loaded.attrs.get("source_dataset")
    if db_data is None:
        raise DHashError(f"{loaded.attrs.get('source', 'index')}: no 'dataset' attribute, cannot find the images")
    if from_files:
        from PIL import Image

        q_images = [np.asarray(Image.open(p).convert("RGB")) for p in q.ids]
    else:
        q_images = images_by_id(q.attrs.get("dataset", db_data), q.ids, data_dir)
    rows = [[int(i) for i in r if i >= 0] for r in idx]
    db_images = images_by_id(db_data, [loaded.ids[i] for r in rows for i in r], data_dir)
    results, start = [], 0
    for r in rows:
        results.append(db_images[start:start + len(r)])
        start += len(r)
    has_labels = q.labels is not None and loaded.labels is not None
    relevant = [[bool(np.any(q.labels[n] & loaded.labels[i])) if has_labels else None for i in r]
                for n, r in enumerate(rows)]
    retrieval_grid(q_images, results, relevant, path)


def _rows(dist: np.ndarray, idx: np.ndarray, lims: np.ndarray | None, ids: list[str] | None) -> list[dict]:
    """Result records in query, rank order (padding of k > N left out)."""
    if lims is None:
        nq, k = idx.shape
        qs, ranks = np.repeat(np.arange(nq), k), np.tile(np.arange(1, k + 1), nq)
        dist, idx = dist.ravel(), idx.ravel()
    else:
        counts = np.diff(lims)
        qs = np.repeat(np.arange(len(counts)), counts)
        ranks = np.arange(len(idx)) - np.repeat(lims[:-1], counts) + 1
    keep = idx >= 0
    rows = []
    for q, r, i, d in zip(qs[keep].tolist(), ranks[keep].tolist(), idx[keep].tolist(), dist[keep].tolist()):
        row = {"query": q, "rank": r, "index": i}
        if ids is not None:
            row["id"] = ids[i]
        row["distance"] = d
        rows.append(row)
    return rows


def _render(rows: list[dict], fmt: str, has_ids: bool, title: str) -> str:
    keys = ["query", "rank", "index"] + (["id"] if has_ids else []) + ["distance"]
    if fmt == "json":
        return json.dumps(rows, ensure_ascii=False, indent=1) + "\n"
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return buf.getvalue()
    from rich.table import Table

    table = Table(title=title)
    for key in keys:
        table.add_column(key, justify="left" if key == "id" else "right")
    for row in rows:
        table.add_row(*(str(row[key]) for key in keys))
    out = Console(file=io.StringIO(), width=200, color_system=None)
    out.print(table)
    return out.file.getvalue()


@click.command(epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.argument("index_path", metavar="INDEX", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--codes", type=click.Path(dir_okay=False, path_type=Path), help="HDF5 code file of query codes.")
@click.option("--image", "images", multiple=True, type=click.Path(dir_okay=False),
              help="Query image file (repeatable); needs --model.")
@click.option("--model", type=click.Path(dir_okay=False, path_type=Path), help="model.pt that encodes --image.")
@click.option("--device", default="auto", show_default=True, help="Device for --model: auto | cpu | cuda | cuda:N")
@click.option("-k", "k", type=click.IntRange(min=1), help="Number of nearest neighbours per query.")
@click.option("--radius", type=click.IntRange(min=0), help="Return every code within this Hamming distance.")
@click.option("--threads", type=click.IntRange(min=1), help="CPU threads  [default: all cores]")
@click.option("--kernel", type=click.Choice(["auto", "portable", "avx2", "avx512"]), default="auto", show_default=True,
              help="Distance kernel (auto: $DHASH_KERNEL, else the best this CPU has).")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), help="Output format.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write here instead of stdout.")
@click.option("--first", type=click.IntRange(min=1), help="Only the first N queries.")
@click.option("--grid", type=click.Path(dir_okay=False, path_type=Path),
              help="Also draw a PNG: each query, then its results framed green (shares a label) or red.")
@click.option("--data-dir", type=click.Path(file_okay=False), help="With --grid: where the dataset's images are.")
def query(index_path: Path, codes: Path | None, images: tuple[str, ...], model: Path | None, device: str,
          k: int | None, radius: int | None, threads: int | None, kernel: str, fmt: str | None,
          output: Path | None, first: int | None, grid: Path | None, data_dir: str | None) -> None:
    """Search INDEX (from `dhash index`) for the nearest codes of each query."""
    if (codes is None) == (not images):
        raise click.UsageError("give the queries either as --codes FILE or as --image PATH (with --model)")
    if images and model is None:
        raise click.UsageError("--image needs --model MODEL.pt to encode the images")
    if model is not None and not images:
        raise click.UsageError("--model is only used with --image")
    if (k is None) == (radius is None):
        raise click.UsageError("give exactly one of -k K and --radius R")
    if fmt is None:
        suffix = output.suffix.lower() if output is not None else ""
        fmt = {".json": "json", ".csv": "csv"}.get(suffix, "table")

    from dhash.atomic import atomic_path, check_not_input

    loaded = load_index(index_path)
    ix = loaded.index
    qfile, inputs = _load_queries(codes, images, model, device, ix.bits, index_path)
    if first is not None:
        qfile = CodeFile(qfile.codes[:first], qfile.bits, None if qfile.labels is None else qfile.labels[:first],
                         None if qfile.ids is None else qfile.ids[:first], qfile.attrs)
    q = qfile.codes
    inputs.append(str(index_path))
    for out in (output, grid):
        if out is not None:
            check_not_input(out, inputs)  # before searching, not after
    kern = None if kernel == "auto" else kernel
    lims = None
    if k is not None:
        dist, idx = ix.search(q, k, threads, kern)
        rows = _rows(dist, idx, None, loaded.ids)
        title = f"{k} nearest of {ix.ntotal:,} codes"
    else:
        lims, dist, idx = ix.range_search(q, radius, threads, kern)
        rows = _rows(dist, idx, lims, loaded.ids)
        title = f"codes within distance {radius} ({ix.ntotal:,} codes)"
    if grid is not None:
        grid_idx = idx if lims is None else [idx[a:b][:10] for a, b in zip(lims[:-1], lims[1:])]
        _draw_grid(grid, qfile, codes is None, loaded, grid_idx, data_dir)
        Console(stderr=True).print(f"[green]wrote[/] {grid}", highlight=False)
    text = _render(rows, fmt, loaded.ids is not None, title)
    if output is None:
        click.echo(text, nl=False)
        return
    with atomic_path(output, inputs) as tmp:
        tmp.write_text(text, encoding="utf-8")
    Console(stderr=True).print(f"[green]wrote[/] {output}: {len(rows):,} results for {len(q):,} queries",
                               highlight=False, soft_wrap=True)
