"""``dhash serve``: the HTTP search service and its web page over an index file (needs ``dhash[serve]``)."""
from __future__ import annotations

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

\b
API (OpenAPI schema at /openapi.json, browsable at /docs): POST /search, POST /search/image,
GET /items/{id}/image, GET /items/random, GET /health, GET /stats, POST /reload.
Replace the index file (e.g. `dhash index ... -o` onto it) and POST /reload, or start with
--watch: requests in flight finish on the old index.
"""


@click.command(epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.argument("index_path", metavar="INDEX", type=click.Path(dir_okay=False, path_type=Path))
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
def serve(index_path: Path, model: Path | None, host: str, port: int, device: str, threads: int, kernel: str,
          data_dir: str | None, max_upload_mb: float, watch: bool) -> None:
    """Serve searches of INDEX (from `dhash index`) over HTTP, with a web page at /."""
    try:
        import uvicorn

        from dhash.serve.app import Service, create_app
    except ImportError as exc:
        raise click.ClickException(f"dhash serve needs the serve extra: pip install 'dhash[serve]' ({exc})") from None
    from dhash.serve.backend import IndexBackend, Reloadable, check_bits
    from dhash.serve.items import ItemImages

    err = Console(stderr=True)
    encoder = None
    if model is not None:
        from dhash.learn.encode import load_model

        encoder = load_model(model, device)
    kern = None if kernel == "auto" else kernel
    holder = Reloadable(lambda: IndexBackend(index_path, threads, kern),
                        check_bits(None if encoder is None else encoder.bits))
    service = Service(holder, encoder, ItemImages(data_dir), max_upload=int(max_upload_mb * 1024 * 1024))
    if watch:
        from dhash.serve.backend import watch as watch_file

        watch_file(holder, log=lambda line: err.print(line, highlight=False, soft_wrap=True))
    backend = holder.current
    err.print(f"serving {index_path}: {backend.ntotal:,} codes of {backend.bits} bits ({backend.index.kind}, "
              f"{backend.kernel_name}) at [bold]http://{host}:{port}/[/]", highlight=False, soft_wrap=True)
    uvicorn.run(create_app(service), host=host, port=port, log_level="warning", access_log=False)
