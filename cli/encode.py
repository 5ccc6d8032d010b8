"""``dhash encode``: images → HDF5 code file, with a trained model."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.console import Console

from dhash.cli.options import console_warnings, data_dir_option, device_option, model_option, output_option, threads_option

SHOWN = 20  # unreadable files listed by name; the rest are counted

EPILOG = """
\b
Examples:
  dhash encode fashion-mnist --model runs/dha32/model.pt --split database -o database.h5
  dhash encode fashion-mnist --model runs/dha32/model.pt --split query -o queries.h5
  dhash encode photos/ --model runs/photos/model.pt -o photos.h5          # every image

\b
--split query|database|train takes that part of the split saved with the run, so SOURCE must be
the data the model was trained on; --split all (the default) encodes every item of any SOURCE.
"""


@click.command(epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.argument("source")
@model_option("The trained model", required=True)
@output_option("HDF5 code file to write.", required=True)
@click.option("--split", type=click.Choice(["query", "database", "train", "all"]), default="all", show_default=True,
              help="Part of the run's saved split to encode.")
@click.option("--batch-size", type=click.IntRange(min=1), default=256, show_default=True)
@device_option()
@data_dir_option()
@click.option("--workers", type=click.IntRange(min=0), help="Image-loading processes  [default: 0 for in-memory data, more for image files]")
@threads_option("all CPUs, or $OMP_NUM_THREADS")
@click.option("--strict", is_flag=True, help="Fail on an unreadable image instead of skipping it.")
def encode(source: str, model: Path, output: Path, split: str, batch_size: int, device: str,
           data_dir: str | None, workers: int | None, threads: int | None, strict: bool) -> None:
    """Encode images (anything --data accepts) into an HDF5 code file with a trained model.

    Under torchrun (``torchrun --nproc_per_node=N -m dhash encode ...``) each process encodes a share
    of the images and rank 0 writes the one file, in the order one process would."""
    from dhash.learn import distributed

    console = Console(stderr=True)
    processes, place = distributed.start(device)  # under torchrun: one share of the images per process
    try:
        _encode(source, model, output, split, batch_size, str(place), data_dir, workers, threads, strict, console, processes)
    finally:
        distributed.stop()


def _encode(source: str, model: Path, output: Path, split: str, batch_size: int, device: str, data_dir: str | None,
            workers: int | None, threads: int | None, strict: bool, console: Console, processes: Any) -> None:
    from dhash.search.codes import write_code_file
    from dhash.learn.runtime import default_workers
    from dhash.learn.data import load_source
    from dhash.learn.encode import load_model

    encoder = load_model(model, device)
    with console_warnings(console):
        data = load_source(source, data_dir or encoder.record.get("data", {}).get("data_dir"), strict=strict, progress=True)
    indices = encoder.split_indices(data, split)
    codes = encoder.encode_source(data, indices, batch_size=batch_size, progress=True, strict=strict,
                                  workers=default_workers(data) if workers is None else workers, threads=threads,
                                  split=split, console=console, processes=processes)
    if not processes.main:
        return
    unreadable = codes.attrs.get("unreadable", [])
    if unreadable:
        listed = "\n  ".join(unreadable[:SHOWN]) + (f"\n  … and {len(unreadable) - SHOWN} more" if len(unreadable) > SHOWN else "")
        console.print(f"[yellow]warning:[/] {len(unreadable)} unreadable images skipped:\n  {listed}", highlight=False, soft_wrap=True)
    inputs = [str(model)] + ([source] if Path(source).is_file() else [])
    write_code_file(output, codes, inputs=inputs)
    console.print(f"[green]wrote[/] {output}: {len(codes):,} codes of {codes.bits} bits ({split} of {data.name})", highlight=False, soft_wrap=True)
