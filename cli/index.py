"""``dhash index``: HDF5 code file → HDF5 index file (linear scan or multi-index hashing)."""
from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console

from dhash.cli.options import output_option

EPILOG = """
\b
Examples:
  dhash index database.h5 -o database.index.h5                 # MIH for >= 65,536 codes, else linear
  dhash index database.h5 -o database.index.h5 --kind mih --substrings 4

\b
The index file keeps the codes, ids and labels of the code file; MIH tables are rebuilt when it is
loaded. Searches are exact whatever the kind; an MIH index falls back to the linear scan for
queries where hashing would be slower (e.g. uniform random codes).
"""


@click.command(epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.argument("codes", type=click.Path(dir_okay=False, path_type=Path))
@output_option("Index file to write.", required=True)
@click.option("--kind", type=click.Choice(["auto", "linear", "mih"]), default="auto", show_default=True,
              help="Linear scan, multi-index hashing, or MIH for large databases.")
@click.option("--substrings", type=click.IntRange(min=1),
              help="MIH substrings; implies mih under --kind auto  [default: about bits / (log2 N - 4)]")
def index(codes: Path, output: Path, kind: str, substrings: int | None) -> None:
    """Index the binary codes of CODES (an HDF5 code file) for `dhash query`."""
    from dhash.search.index_file import index_code_file

    if substrings is not None and kind == "linear":
        raise click.UsageError("--substrings applies to --kind mih (or auto), not linear")
    loaded = index_code_file(codes, output, "mih" if substrings is not None and kind == "auto" else kind, substrings)
    ix = loaded.index
    detail = f" with {ix.substrings} substrings" if ix.kind == "mih" else ""
    Console(stderr=True).print(f"[green]wrote[/] {output}: {ix.ntotal:,} codes of {ix.bits} bits, "
                               f"{ix.kind} index{detail}", highlight=False, soft_wrap=True)
