"""``dhash evaluate``: retrieval metrics of labelled codes (or of a trained run), as a table, JSON or CSV, with plots."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from dhash.cli.options import (csv_text, device_option, emit, format_option, model_file, model_option, output_format,
                               output_option, plain_text, threads_option)
from dhash.evaluate.metrics import GAINS, NORMALIZERS, TIES

EPILOG = """
\b
Examples:
  dhash evaluate --queries q.h5 --database db.h5 --map-at 5000
  dhash evaluate --queries q.h5 --database db.h5 --map-at 1000,all --ties average --format json
  dhash evaluate --compare runs/dha32 runs/dpsh32 -o comparison.csv
  dhash evaluate --model runs/dha32/model.pt --curves figs/dha32
  dhash evaluate --compare runs/dha32 runs/dpsh32 ITQ=itq_q.h5,itq_db.h5 --curves figs/cmp

\b
--compare evaluates each RUN argument and puts them side by side (one table, one figure per
curve). A RUN is a run folder or its model.pt (its query and database splits are encoded), or
two code files QUERIES.h5,DATABASE.h5; prefix NAME= to name it in the legend. --queries /
--database or --model, when given too, are the first entry.

\b
Output (--format, default: from the extension of -o, else a table): a table; json: one JSON
object, the metrics under their usual names (map@5000, map@all, p@h<=2, precision@1000,
recall@1000, ndcg@100, ...) plus queries, database, bits and the conventions used, with --compare
{"runs": {NAME: that object, ...}}; csv: one row per run, its numbers. --json is an old spelling of
--format json. --curves DIR writes pr_hamming.png, precision_radius.png, precision_at_k.png and
their data, radius.csv and topk.csv.

\b
Conventions (docs/metrics.md): relevant = shares at least one label with the query. mAP@K
divides each query's AP by the relevant items it retrieved in the top K (--normalizer min:
by min(#relevant, K)); a query that retrieves no relevant item scores 0 and still counts, as
does one that retrieves nothing within the --precision-radius. --ties stable ranks equal
distances by database index; --ties average reports the exact mean over all orderings of tied
items.
"""


def _ints(value: str | None, name: str, allow_all: bool = False) -> list[int | str]:
    if value is None:
        return []
    out: list[int | str] = []
    for part in value.split(","):
        part = part.strip().lower()
        if allow_all and part == "all":
            out.append("all")
        elif part.isdigit() and int(part) > 0:
            out.append(int(part))
        else:
            expected = "positive integers or 'all'" if allow_all else "positive integers"
            raise click.BadParameter(f"expected comma-separated {expected}, got {value!r}", param_hint=name)
    return out


def _entry(spec: str) -> tuple[str, tuple[str, ...] | Path]:
    """A --compare RUN: ``[NAME=]QUERIES.h5,DATABASE.h5`` or ``[NAME=]RUN_DIR|MODEL.pt`` -> (name, source)."""
    name, _, body = spec.partition("=") if "=" in spec else ("", "", spec)
    if "," in body:
        files = tuple(p.strip() for p in body.split(","))
        if len(files) != 2 or not all(files):
            raise click.BadParameter(f"expected QUERIES.h5,DATABASE.h5, got {body!r}", param_hint="RUN")
        return name or Path(files[0]).stem, files
    model = model_file(body)
    return name or (model.parent.name if model.name == "model.pt" else model.stem), model


def _metrics(source: tuple[str, ...] | Path, data: str | None, device: str, options: dict[str, Any],
             progress: bool) -> dict[str, Any]:  # fmt: skip
    from dhash.errors import DHashError
    from dhash.evaluate.metrics import evaluate_codes

    if isinstance(source, tuple):
        return evaluate_codes(*source, progress=progress, **options)
    if not source.exists():
        raise DHashError(f"{source}: no such model file (give a run folder or its model.pt)")
    from dhash.learn.encode import encode_run_splits
    from dhash.learn.run import kept_epoch

    queries, database = encode_run_splits(source, data=data, device=device, progress=progress)
    return {**evaluate_codes(queries, database, progress=progress, **options), **kept_epoch(source)}


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _csv(results: dict[str, dict[str, Any]]) -> str:
    """One row per run: its name and its numbers (metrics, sizes, bits)."""
    first = next(iter(results.values()))
    keys = ["run", *(k for k, v in first.items() if isinstance(v, (int, float)) and not isinstance(v, bool))]
    return csv_text([{"run": name, **res} for name, res in results.items()], keys)


def _table(results: dict[str, dict[str, Any]]) -> str:
    from rich.table import Table

    first = next(iter(results.values()))
    metrics = [k for k, v in first.items() if isinstance(v, float) and k != "validation_map"]
    notes = (f"ties={first['ties']}, mAP normaliser={first['normalizer']}; {first['relevance']}; "
             f"{first['empty_retrieval']}.")  # fmt: skip
    if len(results) == 1:
        table = Table(title=f"{first['queries']:,} queries × {first['database']:,} codes, "
                            f"{first['bits']} bits")  # fmt: skip
        table.add_column("metric")
        table.add_column("value", justify="right")
        for key in metrics:
            table.add_row(key, _fmt(first[key]))
        if "kept_epoch" in first:
            table.add_row("epoch kept (of trained)", f"{first['kept_epoch']} of {first['trained_epochs']}")
        if first["queries_without_relevant"]:
            table.add_row("queries without a relevant item", str(first["queries_without_relevant"]))
    else:
        table = Table(title="comparison")
        for col in ("run", "bits", "queries", "database", *metrics):
            table.add_column(col, justify="left" if col == "run" else "right")
        for name, res in results.items():
            table.add_row(name, *(_fmt(res.get(key, "")) for key in ("bits", "queries", "database", *metrics)))
    return plain_text(table, notes, width=max(100, 14 * (len(metrics) + 4)))


@click.command(epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--queries", "-q", "queries", type=click.Path(dir_okay=False), help="Query code file (HDF5, labelled).")
@click.option("--database", "-d", "database", type=click.Path(dir_okay=False),
              help="Database code file (HDF5, labelled).")
@model_option("A trained run: encode its query and database splits, then evaluate")
@click.option("--data", metavar="SPEC",
              help="Where the run's data set is, if not where it was at training time (with --model).")
@device_option("Device for encoding (cuda[:N] also computes the Hamming distances)")
@click.option("--map-at", "map_at", default="all", show_default=True, metavar="K|all[,...]",
              help="mAP cut-offs, e.g. 5000 or 1000,all.")
@click.option("--precision-radius", type=click.IntRange(min=0), default=2, show_default=True,
              help="r of P@H<=r and R@H<=r (precision/recall within Hamming radius r).")
@click.option("--precision-at", "precision_at", default="100,500,1000", show_default=True, metavar="K[,...]",
              help="k of precision@k and recall@k.")
@click.option("--ndcg-at", "ndcg_at", metavar="K[,...]", help="k of NDCG@k  [default: 100 for multi-label data]")
@click.option("--gain", type=click.Choice(GAINS), default="shared", show_default=True,
              help="NDCG gain: number of shared labels, or cosine of the label vectors.")
@click.option("--ties", type=click.Choice(TIES), default="stable", show_default=True,
              help="Equal distances: ranked by database index, or averaged over all orderings.")
@click.option("--normalizer", type=click.Choice(NORMALIZERS), default="retrieved", show_default=True,
              help="mAP@K divides by relevant items retrieved in the top K, or by min(#relevant, K).")
@click.option("--curves", "curves_dir", type=click.Path(file_okay=False),
              help="Write PNG plots and CSV tables of the curves to this folder.")
@click.option("--compare", is_flag=True, help="Evaluate each RUN argument and compare them (see below).")
@threads_option()
@format_option()
@output_option("Write the metrics here instead of stdout.")
@click.option("--json", "as_json", is_flag=True, hidden=True, help="Deprecated: --format json.")
@click.argument("runs", nargs=-1, metavar="[RUN]...")
def evaluate(queries: str | None, database: str | None, model: Path | None, data: str | None, device: str,
             map_at: str, precision_radius: int, precision_at: str, ndcg_at: str | None, gain: str, ties: str,
             normalizer: str, curves_dir: str | None, compare: bool, threads: int | None, fmt: str | None,
             output: Path | None, as_json: bool, runs: tuple[str, ...]) -> None:  # fmt: skip
    """Retrieval metrics of query codes against database codes: mAP@K, precision and recall within a
    Hamming radius and at K, NDCG@K for multi-label data; optional plots and run comparisons."""
    if (queries is None) != (database is None):
        raise click.UsageError("give both --queries and --database")
    if model is not None and queries is not None:
        raise click.UsageError("give either --queries/--database or --model, not both")
    if runs and not compare:
        raise click.UsageError(f"unexpected argument {runs[0]!r} (RUN arguments need --compare)")
    if compare and not runs:
        raise click.UsageError("--compare needs at least one RUN argument")
    if queries is None and model is None and not runs:
        raise click.UsageError("give --queries and --database, or --model, or --compare RUN...")
    if data is not None and model is None and not runs:
        raise click.UsageError("--data is only used with --model or --compare RUN")
    if as_json and fmt not in (None, "json"):
        raise click.UsageError(f"--json means --format json, not --format {fmt}")
    fmt = "json" if as_json else output_format(fmt, output)

    entries: list[tuple[str, tuple[str, ...] | Path]] = []
    if queries is not None:
        entries.append((Path(queries).stem, (queries, database)))
    elif model is not None:
        entries.append((model.parent.name if model.name == "model.pt" else model.stem, model))
    entries += [_entry(spec) for spec in runs]

    inputs = [p for _, source in entries for p in (source if isinstance(source, tuple) else (source,))]
    if output is not None:
        from dhash.atomic import check_not_input

        check_not_input(output, inputs)  # before evaluating, not after
    options = dict(
        map_at=_ints(map_at, "--map-at", allow_all=True),
        precision_radius=precision_radius,
        precision_at=_ints(precision_at, "--precision-at"),
        ndcg_at=_ints(ndcg_at, "--ndcg-at") if ndcg_at is not None else None,
        ties=ties,
        normalizer=normalizer,
        gain=gain,
        curves=curves_dir is not None,
        threads=threads,
        device=device if device.startswith("cuda") else None,
    )
    progress = fmt == "table" and sys.stderr.isatty()
    results: dict[str, dict[str, Any]] = {}
    for name, source in entries:
        unique, n = name, 2
        while unique in results:
            unique, n = f"{name}#{n}", n + 1
        results[unique] = _metrics(source, data, device, options, progress)

    curves = {name: res.pop("curves") for name, res in results.items() if "curves" in res}
    if curves_dir is not None:
        from dhash.evaluate.curves import write_curves

        first = next(iter(results.values()))
        written = write_curves(curves, curves_dir, subtitle=f"ties={first['ties']}")
        Console(stderr=True).print(f"[green]wrote[/] {len(written)} files to {curves_dir}", highlight=False)
    if fmt == "json":
        obj = next(iter(results.values())) if len(results) == 1 else {"runs": results}
        text = json.dumps(obj, indent=1) + "\n"
    else:
        text = _csv(results) if fmt == "csv" else _table(results)
    emit(text, output, inputs, f": metrics of {len(results)} run{'s' if len(results) > 1 else ''}")
