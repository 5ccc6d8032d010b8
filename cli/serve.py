"""``dhash serve``: the HTTP search service and its web page over an index file (needs ``dhash[serve]``)."""
from __future__ import annotations

from functools import partial
from pathlib import Path

import click
from rich.console import Console

from .options import data_dir_option, device_option, model_option

EPILOG = """
\b
Examples:
  dhash serve db.index.h5 --model runs/dha32/model.pt        # then open http://127.0.0.1:8000/
  curl -s localhost:8000/search -H 'Content-Type: application/json' -d '{"codes": ["a3f0c1d2"], "k": 5}'
  curl -s 'localhost:8000/search/image?k=5' -F image=@shirt.png
  dhash serve --uri codes.db --collection fmnist32 --model runs/dha32/model.pt   # Milvus (dhash export)

\b
API (OpenAPI schema at /openapi.json, browsable at /docs): POST /search, POST /search/image,
GET /items/{id}/image, GET /items/random, GET /health, GET /stats, POST /reload.
Replace the index file (e.g. `dhash index ... -o` onto it) and POST /reload, or start with
--watch: requests in flight finish on the old index. With --uri, Milvus searches the collection;
POST /reload reconnects and re-reads its count and metadata (codes appended by `dhash export
--append` are searched at once even without it). A Milvus Lite file is open in one process at a
time: stop the server before exporting to it.
"""


@click.command(epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.argument("index_path", metavar="[INDEX]", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--uri", help="Serve a Milvus collection instead of INDEX: Milvus Lite file or http://HOST:PORT.")
@click.option("--collection", help="With --uri: the collection (from `dhash export --to milvus`).")
@click.option("--token", envvar="MILVUS_TOKEN", help="With --uri: user:password or API key  [env: MILVUS_TOKEN]")
@model_option("Model that encodes uploaded images; without it, search by code only")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@device_option("Device for --model")
@click.option("--threads", type=click.IntRange(min=1), default=1, show_default=True,
              help="CPU threads per search (requests run in parallel anyway).")
@click.option("--kernel", type=click.Choice(["auto", "portable", "avx2", "avx512"]), default="auto", show_default=True,
              help="Distance kernel (auto: $DHASH_KERNEL, else the best this CPU has).")
@data_dir_option()
@click.option("--max-upload-mb", type=click.FloatRange(min=0, min_open=True), default=20, show_default=True,
              help="Largest image upload accepted.")
@click.option("--watch", is_flag=True, help="Reload the index when its file changes (checked every second).")
def serve(index_path: Path | None, uri: str | None, collection: str | None, token: str | None, model: Path | None,
          host: str, port: int, device: str, threads: int, kernel: str, data_dir: str | None, max_upload_mb: float,
          watch: bool) -> None:
    """Serve searches of INDEX (from `dhash index`) or of a Milvus collection (--uri, --collection)
    over HTTP, with a web page at /."""
    milvus = uri is not None or collection is not None
    if milvus:
        if index_path is not None:
            raise click.UsageError("give either INDEX or --uri/--collection, not both")
        if uri is None or collection is None:
            raise click.UsageError("a Milvus collection needs both --uri URI and --collection NAME")
        if watch or kernel != "auto":
            raise click.UsageError("--watch and --kernel are for index files; with --uri use POST /reload")
    elif index_path is None:
        raise click.UsageError("give an index file, or --uri and --collection for a Milvus collection")
    try:
        import uvicorn

        from dhash.serve.app import Service, create_app
    except ImportError as exc:
        raise click.ClickException(f"dhash serve needs the serve extra: pip install 'dhash[serve]' ({exc})") from None
    from dhash.serve.backend import IndexBackend, MilvusBackend, Reloadable, check_bits
    from dhash.serve.items import ItemImages

    err = Console(stderr=True)
    encoder = None
    if model is not None:
        from dhash.learn.encode import load_model

        encoder = load_model(model, device)
    kern = None if kernel == "auto" else kernel
    open_backend = (partial(MilvusBackend, uri, collection, token) if milvus
                    else partial(IndexBackend, index_path, threads, kern))
    holder = Reloadable(open_backend, check_bits(None if encoder is None else encoder.bits))
    service = Service(holder, encoder, ItemImages(data_dir), max_upload=int(max_upload_mb * 1024 * 1024))
    if watch:
        from dhash.serve.backend import watch as watch_file

        watch_file(holder, log=lambda line: err.print(line, highlight=False, soft_wrap=True))
    backend = holder.current
    engine = backend.describe()
    err.print(f"serving {backend.name}: {backend.ntotal:,} codes of {backend.bits} bits ({engine['kind']}"
              f"{', ' + engine['kernel'] if engine['kernel'] else ''}) at [bold]http://{host}:{port}/[/]",
              highlight=False, soft_wrap=True)
    uvicorn.run(create_app(service), host=host, port=port, log_level="warning", access_log=False)
