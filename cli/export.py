"""``dhash export``: a code file → a faiss binary index file, or rows of a Milvus collection."""
from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console

from dhash.cli.options import output_option

EPILOG = """
\b
Examples:
  dhash export db.h5 --to faiss -o db.faiss                       # + side file db.faiss.h5
  dhash export db.h5 --to faiss -o db.hnsw.faiss --faiss-index hnsw
  dhash export db.h5 --to milvus --uri codes.db --collection fmnist32        # Milvus Lite file
  dhash export more.h5 --to milvus --uri http://milvus:19530 --collection fmnist32 --append

\b
faiss: flat is exact, multihash and hnsw are approximate (see README). The side file keeps the ids,
labels and provenance; `dhash query db.faiss --codes q.h5 -k 10` searches the pair.
Milvus: the code file's ids become primary keys (required), its labels a VARCHAR field (",c,") for filtered
search. --append skips ids already in the collection, so rerunning an interrupted export with
--append completes it without duplicates.
"""


@click.command(epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.argument("codes", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--to", "engine", required=True, type=click.Choice(["faiss", "milvus"]), help="Target engine.")
@output_option("faiss: index file to write.")
@click.option("--faiss-index", type=click.Choice(["flat", "multihash", "hnsw"]), default="flat", show_default=True,
              help="faiss: IndexBinaryFlat (exact), IndexBinaryMultiHash or IndexBinaryHNSW.")
@click.option("--uri", help="Milvus: a Milvus Lite file (e.g. codes.db) or http://HOST:PORT of a server.")
@click.option("--token", envvar="MILVUS_TOKEN", help="Milvus: user:password or API key  [env: MILVUS_TOKEN]")
@click.option("--collection", help="Milvus: collection name.")
@click.option("--append", is_flag=True, help="Milvus: add to an existing collection (ids already there are skipped).")
@click.option("--overwrite", is_flag=True, help="Milvus: drop an existing collection first.")
def export(codes: Path, engine: str, output: Path | None, faiss_index: str, uri: str | None, token: str | None,
           collection: str | None, append: bool, overwrite: bool) -> None:
    """Export the codes of CODES (an HDF5 code file) to faiss or Milvus."""
    from dhash.search.codes import read_code_file

    err = Console(stderr=True)
    if engine == "faiss":
        if output is None:
            raise click.UsageError("--to faiss needs -o FILE.faiss")
        if uri or collection or append or overwrite:
            raise click.UsageError("--uri, --collection, --append and --overwrite are for --to milvus")
        from dhash.search.backends.faiss import export_faiss

        ix = export_faiss(read_code_file(codes), output, faiss_index, source=codes)
        err.print(f"[green]wrote[/] {output} (+ {output.name}.h5): {ix.ntotal:,} codes of {ix.bits} bits, "
                  f"faiss {faiss_index}", highlight=False, soft_wrap=True)
        return
    if uri is None or collection is None:
        raise click.UsageError("--to milvus needs --uri URI and --collection NAME")
    if output is not None or faiss_index != "flat":
        raise click.UsageError("-o and --faiss-index are for --to faiss")
    if append and overwrite:
        raise click.UsageError("give at most one of --append and --overwrite")
    from dhash.search.backends.milvus import export_milvus

    mode = "append" if append else "overwrite" if overwrite else "create"
    inserted, skipped = export_milvus(read_code_file(codes), uri, collection, mode, str(codes), token, progress=True)
    detail = f" ({skipped:,} already there, skipped)" if skipped else ""
    err.print(f"[green]exported[/] {inserted:,} codes to collection {collection} at {uri}{detail}",
              highlight=False, soft_wrap=True)
