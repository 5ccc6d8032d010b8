"""``dhash query``: exact k-NN or radius search of an index file, printed or written as table/JSON/CSV."""
from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import click
import numpy as np
from rich.console import Console

from dhash.cli.options import (data_dir_option, device_option, emit, format_option, model_option,
                               output_format, output_option, plain_text, threads_option)
from dhash.search.codes import CodeFile
from dhash.search.index import KERNELS
from dhash.search.results import result_csv, result_records

EPILOG = """
\b
Examples:
  dhash query database.index.h5 --codes queries.h5 -k 10
  dhash query database.index.h5 --codes queries.h5 --radius 2 --format json -o hits.json
  dhash query database.index.h5 --image cat.jpg --model runs/x/model.pt -k 5
  dhash query database.index.h5 --codes queries.h5 -k 8 --first 6 --grid retrievals.png
  dhash query db.faiss --codes queries.h5 -k 10                   # from dhash export --to faiss
  dhash query --uri codes.db --collection fmnist32 --codes queries.h5 -k 10      # Milvus

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


def _render(dist: np.ndarray, idx: np.ndarray, lims: np.ndarray | None, ids: list[str] | None, fmt: str,
            title: str) -> str | bytes:
    if fmt == "csv":  # formatted by NumPy: no Python object per result row
        return result_csv(dist, idx, lims, ids)
    rows = result_records(dist, idx, lims, ids)
    keys = ["query", "rank", "index"] + (["id"] if ids is not None else []) + ["distance"]
    if fmt == "json":
        return json.dumps(rows, ensure_ascii=False, indent=1) + "\n"
    from rich.table import Table

    table = Table(title=title)
    for key in keys:
        table.add_column(key, justify="left" if key == "id" else "right")
    for row in rows:
        table.add_row(*(str(row[key]) for key in keys))
    return plain_text(table, width=200)


@click.command(epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.argument("index_path", metavar="[INDEX]", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--uri", help="Search a Milvus collection instead of INDEX: Milvus Lite file or http://HOST:PORT.")
@click.option("--collection", help="With --uri: the collection (from `dhash export --to milvus`).")
@click.option("--token", envvar="MILVUS_TOKEN", help="With --uri: user:password or API key  [env: MILVUS_TOKEN]")
@click.option("--codes", type=click.Path(dir_okay=False, path_type=Path), help="HDF5 code file of query codes.")
@click.option("--image", "images", multiple=True, type=click.Path(dir_okay=False),
              help="Query image file (repeatable); needs --model.")
@model_option("The model that encodes --image")
@device_option("Device for --model (cuda[:N] also runs the search, a linear scan)")
@click.option("-k", "k", type=click.IntRange(min=1), help="Number of nearest neighbours per query.")
@click.option("--radius", type=click.IntRange(min=0), help="Return every code within this Hamming distance.")
@threads_option()
@click.option("--kernel", type=click.Choice(["auto", *KERNELS]), default="auto", show_default=True,
              help="Distance kernel (auto: $DHASH_KERNEL, else the fastest here; see `dhash info`).")
@format_option()
@output_option("Write the results here instead of stdout.")
@click.option("--first", type=click.IntRange(min=1), help="Only the first N queries.")
@click.option("--grid", type=click.Path(dir_okay=False, path_type=Path),
              help="Also draw a PNG: each query, then its results framed green (shares a label) or red.")
@data_dir_option("With --grid: where the dataset's images are.")
def query(index_path: Path | None, uri: str | None, collection: str | None, token: str | None, codes: Path | None,
          images: tuple[str, ...], model: Path | None, device: str,
          k: int | None, radius: int | None, threads: int | None, kernel: str, fmt: str | None,
          output: Path | None, first: int | None, grid: Path | None, data_dir: str | None) -> None:
    """Search INDEX (from `dhash index`, or a faiss file from `dhash export`) or a Milvus collection
    (--uri, --collection) for the nearest codes of each query."""
    if (codes is None) == (not images):
        raise click.UsageError("give the queries either as --codes FILE or as --image PATH (with --model)")
    if images and model is None:
        raise click.UsageError("--image needs --model MODEL.pt to encode the images")
    if model is not None and not images:
        raise click.UsageError("--model is only used with --image")
    if (k is None) == (radius is None):
        raise click.UsageError("give exactly one of -k K and --radius R")
    fmt = output_format(fmt, output)

    from dhash.atomic import check_not_input
    from dhash.search.backends import open_index

    loaded = open_index(index_path, uri, collection, token)
    index_path = index_path or Path(f"{uri}#{collection}")
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
    if device.startswith("cuda"):
        from dhash.search.torch_search import TorchIndex

        if not hasattr(ix, "codes"):
            raise click.UsageError("--device cuda searches dhash index files, not faiss or Milvus")

        on_device = TorchIndex(ix.codes(), ix.bits, device)
        knn, within = on_device.search, on_device.range_search
    else:
        knn = partial(ix.search, threads=threads, kernel=kern)
        within = partial(ix.range_search, threads=threads, kernel=kern)
    lims = None
    if k is not None:
        dist, idx = knn(q, k)
        title = f"{k} nearest of {ix.ntotal:,} codes"
    else:
        lims, dist, idx = within(q, radius)
        title = f"codes within distance {radius} ({ix.ntotal:,} codes)"
    if grid is not None:
        grid_idx = idx if lims is None else [idx[a:b][:10] for a, b in zip(lims[:-1], lims[1:])]
        from dhash.evaluate.gallery import query_grid
        from dhash.learn.data import images_by_id

        query_grid(grid, qfile, loaded, grid_idx, lambda dataset, ids: images_by_id(dataset, ids, data_dir),
                   query_files=codes is None)
        Console(stderr=True).print(f"[green]wrote[/] {grid}", highlight=False)
    results = int(np.count_nonzero(np.asarray(idx) >= 0))
    emit(_render(dist, idx, lims, loaded.ids, fmt, title), output, inputs, f": {results:,} results for {len(q):,} queries")
