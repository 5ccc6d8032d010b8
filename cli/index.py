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
  dhash index --append more.h5 -o database.index.h5            # add codes to an existing index
  dhash index --remove gone.txt -o database.index.h5           # delete the ids listed, one a line

\b
The index file keeps the codes, ids and labels of the code file; MIH tables are rebuilt when it is
loaded. Searches are exact whatever the kind; an MIH index falls back to the linear scan for
queries where hashing would be slower (e.g. uniform random codes).
"""


@click.command(epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.argument("codes", required=False, type=click.Path(dir_okay=False, path_type=Path))
@output_option("Index file to write.", required=True)
@click.option("--kind", type=click.Choice(["auto", "linear", "mih"]), default="auto", show_default=True,
              help="Linear scan, multi-index hashing, or MIH for large databases.")
@click.option("--substrings", type=click.IntRange(min=1),
              help="MIH substrings; implies mih under --kind auto  [default: about bits / (log2 N - 4)]")
@click.option("--append", type=click.Path(dir_okay=False, path_type=Path),
              help="Add the codes of this code file to the existing index -o (replaced atomically).")
@click.option("--remove", type=click.Path(dir_okay=False, path_type=Path),
              help="Delete the ids listed in this text file (one a line) from the existing index -o.")
def index(codes: Path | None, output: Path, kind: str, substrings: int | None, append: Path | None,
          remove: Path | None) -> None:
    """Index the binary codes of CODES (an HDF5 code file) for `dhash query`, or update index -o."""
    from dhash.search.index_file import index_code_file

    if append is not None or remove is not None:
        if codes is not None or kind != "auto" or substrings is not None:
            raise click.UsageError("--append/--remove update the index -o: give no CODES, --kind or --substrings")
        from dhash.search.index_update import update_index

        ix = update_index(output, append, remove).index
        Console(stderr=True).print(f"[green]updated[/] {output}: {ix.ntotal:,} codes", highlight=False,
                                   soft_wrap=True)
        return
    if codes is None:
        raise click.UsageError("give CODES (a code file to index), or --append / --remove to update -o")
    if substrings is not None and kind == "linear":
        raise click.UsageError("--substrings applies to --kind mih (or auto), not linear")
    loaded = index_code_file(codes, output, "mih" if substrings is not None and kind == "auto" else kind, substrings)
    ix = loaded.index
    detail = f" with {ix.substrings} substrings" if ix.kind == "mih" else ""
    Console(stderr=True).print(f"[green]wrote[/] {output}: {ix.ntotal:,} codes of {ix.bits} bits, "
                               f"{ix.kind} index{detail}", highlight=False, soft_wrap=True)
