"""``dhash`` — the Click group. Subcommands load lazily so ``dhash query`` never pays for importing torch."""
from __future__ import annotations

import importlib

import click

from dhash import __version__
from dhash.errors import DHashError

# name -> ("module:attribute" inside dhash.cli, one-line help shown by `dhash --help`)
COMMANDS = {
    "train": ("train:train", "Train a hashing network on labelled images."),
    "encode": ("encode:encode", "Encode images into an HDF5 code file with a trained model."),
    "index": ("index:index", "Build a search index (linear scan or multi-index hashing) from a code file."),
    "export": ("export:export", "Export a code file to a faiss index file or a Milvus collection."),
    "query": ("query:query", "Search an index by Hamming distance (k-NN or radius)."),
    "evaluate": ("evaluate:evaluate", "Retrieval metrics (mAP@k, P@H<=r, precision/recall) and curves."),
    "info": ("info:info", "The CPU, the search kernels available and the one chosen per code length."),
    "serve": ("serve:serve", "HTTP search service (JSON API and a web page) over an index."),
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use and whose user errors print as one line."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module, attr = COMMANDS[name][0].split(":")
        return getattr(importlib.import_module(f"dhash.cli.{module}"), attr)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, short) for name, (_, short) in COMMANDS.items()])

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except DHashError as exc:
            raise click.ClickException(str(exc)) from None


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="dhash")
def main() -> None:
    """Deep supervised hashing: train hashing networks, encode images to binary codes,
    index them and search by Hamming distance.

    \b
    Example (Fashion-MNIST, 32 bits):
      dhash train --data fashion-mnist --method dha --bits 32 -o runs/dha32
      dhash encode fashion-mnist --model runs/dha32/model.pt --split database -o db.h5
      dhash encode fashion-mnist --model runs/dha32/model.pt --split query -o q.h5
      dhash index db.h5 -o db.index.h5
      dhash query db.index.h5 --codes q.h5 -k 10
      dhash evaluate --queries q.h5 --database db.h5 --map-at 1000
    """
