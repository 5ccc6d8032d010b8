"""``dhash train``: train a hashing network (or fit a closed-form method) into a run folder."""
from __future__ import annotations

import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from dhash.cli.options import console_warnings, output_option
from dhash.learn.config import read_config_file
from dhash.errors import DHashError
from dhash.learn.methods import describe_params, get_method, method_names
from dhash.learn.settings import DEFAULTS, FIELDS, TYPES, check_settings


def _list_methods(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    table = Table("method", "paper", "training", "params (default): meaning", title="dhash methods", show_lines=True)
    for name in method_names():
        try:
            method = get_method(name)
        except (ImportError, AttributeError) as exc:
            table.add_row(name, f"[red]not available ({exc})", "", "")
            continue
        kind = "gradient" if method.trainable else "closed form"
        if method.needs_classifier:
            kind += ", classifier head"
        if getattr(method, "default_backbone", None):
            kind += f", backbone {method.default_backbone}"
        if method.train_defaults:
            kind += "\n" + ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in method.train_defaults.items())
        params = "\n".join(f"[bold]{key}[/] ({default}): {help_}" for key, default, help_ in describe_params(method))
        table.add_row(name, method.paper, kind, params or "—")
    Console().print(table)
    ctx.exit()


def _without_processes(args: list[str]) -> list[str]:
    """The command line less its ``--processes N`` (what each launched process runs)."""
    out, skip = [], False
    for arg in args:
        if skip:
            skip = False
        elif arg == "--processes":
            skip = True
        elif not arg.startswith("--processes="):
            out.append(arg)
    return out


def _params(pairs: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise DHashError(f"--param {pair}: expected KEY=VALUE")
        out[key.strip()] = value.strip()
    return out


def _file_only() -> str:
    """The settings with no option, for the epilog."""
    parts = []
    for name, field in FIELDS.items():
        if not field.metadata["option"] and name != "backbone_options":
            default = DEFAULTS[name]
            parts.append(f"{name} ({field.metadata['help']})" if default is None else f"{name} ({default}: {field.metadata['help']})")
    return ", ".join(parts)


_CONFIG_FILE = textwrap.fill(
    "Every option can be set in the TOML file given by --config, with the option's name as key (dashes or "
    "underscores), method parameters in a [params] table and backbone options in a [backbone_options] table; "
    "precedence: options > config file > the method's training defaults > built-in defaults. Settings only for "
    f"the file: {_file_only()}, output.", width=96)


EPILOG = f"""
\b
Examples:
  dhash train --data fashion-mnist --method dha --bits 32 -o runs/dha32
  dhash train --data photos/ --method dha --bits 48 --protocol per-class -o runs/photos
  dhash train --config dha.toml -o runs/dha32 --epochs 10      # options override the file
  dhash train -o runs/dha32 --resume                           # continue after Ctrl-C
  dhash train --data fashion-mnist --method dha --processes 2 -o runs/dha32-ddp   # 2 processes (DDP)
  torchrun --nproc_per_node=2 -m dhash train --data fashion-mnist --method dha -o runs/dha32-ddp
  dhash train --list-methods                                   # methods and their --param keys

\b
{_CONFIG_FILE}

\b
Default backbone: the method's own (hegh: cbam-cnn), else small-cnn for in-memory image sets up
to 32 px (fashion-mnist, mnist, cifar10; pixels for the closed-form lsh/itq) and pretrained
efficientnet-lite0 for image folders and list files. The run folder gets config.json (effective
config), split.npz, metrics.jsonl, checkpoint.pt (every epoch) and model.pt.
"""


def _click_type(name: str) -> Any:
    """The Click type of a setting's option: its choices, a path, or its value type."""
    meta = FIELDS[name].metadata
    kind = meta["cli"].get("type")
    if meta["choices"]:
        return click.Choice(meta["choices"])
    if callable(kind):
        return click.Choice(kind())
    if kind in ("file", "dir"):
        return click.Path(dir_okay=kind != "file", file_okay=kind != "dir")
    return {int: int, float: float}.get(TYPES[name][-1], str)


def settings_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Decorate ``command`` with one option per setting that has one (see ``dhash.learn.settings``).

    Options default to None, so the command sees only the settings given on the command line.
    """
    for name, field in reversed(FIELDS.items()):
        meta = field.metadata
        if not meta["option"]:
            continue
        extra = dict(meta["cli"])
        decls = extra.pop("decls", (f"--{name.replace('_', '-')}",))
        extra.pop("type", None)
        help_ = meta["help"]
        if meta["show_default"]:
            origin = ", or the method's" if meta["method_default"] else ""
            help_ += f"{'  ' if help_ else ''}[default: {DEFAULTS[name]}{origin}]"
        if "/" not in decls[0] and not extra.get("is_flag"):
            extra["type"] = _click_type(name)
        command = click.option(*decls, default=None, help=help_, **extra)(command)
    return command


@click.command(epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@settings_options
@output_option("Run folder to create (or resume).", folder=True)
@click.option("--config", "config_file", type=click.Path(dir_okay=False), help="TOML file of settings.")
@click.option("--resume", is_flag=True, help="Continue the run in -o from its last checkpoint.")
@click.option("--processes", type=click.IntRange(min=1), default=1, show_default=True,
              help="Train with this many processes on this machine (DistributedDataParallel, launched with "
                   "torchrun; --batch-size is the global batch). Several machines: see the README.")
@click.option("--list-methods", is_flag=True, is_eager=True, expose_value=False, callback=_list_methods,
              help="List the methods, their papers and parameters, and exit.")
@click.pass_context
def train(ctx: click.Context, output: Path | None, params: tuple[str, ...], config_file: str | None, resume: bool,
          processes: int, **options: Any) -> None:
    """Train a hashing network on labelled images and save it in a run folder."""
    from dhash.learn import distributed
    from dhash.learn.run import Run
    from dhash.learn.train import TrainingInterrupted, effective_config, train as run_training

    world = distributed.env_processes().world
    if processes > 1 and world == 1:
        distributed.launch(processes, _without_processes(sys.argv[1:]))
        return
    if processes > 1 and processes != world:
        raise DHashError(f"--processes {processes}: torchrun started {world} processes")

    console = Console(stderr=True)
    file, file_output = read_config_file(config_file) if config_file else ({}, None)
    output = output or (Path(file_output) if file_output else None)
    if output is None:
        raise DHashError("missing -o/--output: the run folder to write")
    cli = {k: v for k, v in options.items() if v is not None}
    if params:
        cli["params"] = _params(params)
    cli = check_settings(cli, "dhash train")
    run = Run(output)
    config = effective_config(run, cli, file, resume)
    try:
        with console_warnings(console):
            model = run_training(config, output, resume=resume, progress=True, console=console)
        if not distributed.env_processes().main:
            return
    except TrainingInterrupted as exc:
        console.print(f"[yellow]{exc}", highlight=False, soft_wrap=True)
        ctx.exit(130)
    except KeyboardInterrupt:
        hint = f"; continue with: dhash train -o {output} --resume" if run.config.exists() else ""
        console.print(f"[yellow]interrupted{hint}", highlight=False, soft_wrap=True)
        ctx.exit(130)
    finally:
        distributed.stop()
    console.print(f"[green]saved[/] {model}", highlight=False, soft_wrap=True)
    data = config["data"]
    console.print(f"next: dhash encode {data} --model {model} --split database -o database.h5", highlight=False, soft_wrap=True)
