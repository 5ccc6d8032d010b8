"""Options shared by the subcommands, defined once so that one name means one thing everywhere.

``--model`` takes a model file or its run folder; ``--device``, ``--threads`` and ``--data-dir``
mean the same in every command; ``-o/--output`` is where the command's result goes; ``--format
table|json|csv`` (default: from the extension of ``-o``, else a table) is how a result that is
printed is written. ``emit`` prints such a result or writes it atomically to ``-o``;
``console_warnings`` shows Python warnings as one line each.
"""
from __future__ import annotations

import csv
import io
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from rich.console import Console

FORMATS = ("table", "json", "csv")

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


class ModelPath(click.ParamType):
    """A model file, or a run folder (meaning its ``model.pt``)."""

    name = "model"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Path:
        return model_file(value)


def model_file(spec: str | Path) -> Path:
    """``spec`` as a model file: a run folder means its ``model.pt``."""
    path = Path(spec)
    return path / "model.pt" if path.is_dir() else path


def model_option(help: str, required: bool = False) -> Decorator:
    return click.option("--model", type=ModelPath(), required=required, metavar="MODEL",
                        help=f"{help} (a model.pt, or the run folder holding it).")


def device_option(what: str = "Device") -> Decorator:
    return click.option("--device", default="auto", show_default=True, help=f"{what}: auto | cpu | cuda | cuda:N")


def threads_option(default: str = "all CPUs") -> Decorator:
    return click.option("--threads", type=click.IntRange(min=1), help=f"CPU threads  [default: {default}]")


def data_dir_option(help: str = "Where fashion-mnist / mnist / cifar10 are looked for first.") -> Decorator:
    return click.option("--data-dir", type=click.Path(file_okay=False), help=help)


def output_option(help: str, required: bool = False, folder: bool = False) -> Decorator:
    return click.option("-o", "--output", required=required, help=help,
                        type=click.Path(file_okay=not folder, dir_okay=folder, path_type=Path))


def format_option() -> Decorator:
    return click.option("--format", "fmt", type=click.Choice(FORMATS),
                        help="Output format  [default: from the extension of -o (.json, .csv), else table]")


def output_format(fmt: str | None, output: Path | None) -> str:
    """The ``--format`` given, else the one the extension of ``-o`` names, else ``table``."""
    if fmt is not None:
        return fmt
    suffix = output.suffix.lower() if output is not None else ""
    return {".json": "json", ".csv": "csv"}.get(suffix, "table")


def csv_text(rows: Sequence[dict[str, Any]], keys: Sequence[str]) -> str:
    """``rows`` as CSV with a header of ``keys`` (missing values left empty)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(keys), lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def plain_text(*renderables: Any, width: int) -> str:
    """Rich renderables (tables, notes) as plain text, ``width`` columns wide."""
    out = Console(file=io.StringIO(), width=width, color_system=None)
    for item in renderables:
        out.print(item, highlight=False)
    return out.file.getvalue()


def emit(text: str | bytes, output: Path | None, inputs: Sequence[str | Path], note: str) -> None:
    """Print ``text`` (bytes: UTF-8 already), or write it atomically to ``output`` and say so (``note``
    on stderr)."""
    from dhash.atomic import atomic_path

    if output is None:
        click.echo(text, nl=False)
        return
    with atomic_path(output, [str(p) for p in inputs]) as tmp:
        tmp.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    Console(stderr=True).print(f"[green]wrote[/] {output}{note}", highlight=False, soft_wrap=True)


@contextmanager
def console_warnings(console: Console) -> Iterator[None]:
    """Show Python warnings (e.g. unreadable images skipped while loading data) as one yellow line each."""
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = lambda message, *args, **kwargs: console.print(f"[yellow]warning:[/] {message}", highlight=False, soft_wrap=True)
        yield
