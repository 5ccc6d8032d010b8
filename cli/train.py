"""``dhash train``: train a hashing network (or fit a closed-form method) into a run folder."""
from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from dhash.learn.config import DEFAULTS, check_settings, read_config_file
from dhash.learn.data import PROTOCOLS
from dhash.errors import DHashError
from dhash.learn.methods import describe_params, get_method, method_names
from dhash.learn.models import backbone_names


@contextmanager
def console_warnings(console: Console) -> Iterator[None]:
    """Show Python warnings (e.g. unreadable images skipped while loading data) as one yellow line each."""
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = lambda message, *args, **kwargs: console.print(f"[yellow]warning:[/] {message}", highlight=False, soft_wrap=True)
        yield


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


def _params(pairs: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise DHashError(f"--param {pair}: expected KEY=VALUE")
        out[key.strip()] = value.strip()
    return out


EPILOG = f"""
\b
Examples:
  dhash train --data fashion-mnist --method dha --bits 32 -o runs/dha32
  dhash train --data photos/ --method dha --bits 48 --protocol per-class -o runs/photos
  dhash train --config dha.toml -o runs/dha32 --epochs 10      # options override the file
  dhash train -o runs/dha32 --resume                           # continue after Ctrl-C
  dhash train --list-methods                                   # methods and their --param keys

\b
Every option can be set in the TOML file given by --config, with the option's name as key
(dashes or underscores), method parameters in a [params] table and backbone options in a
[backbone_options] table; precedence: options > config file > the method's training defaults >
built-in defaults. Settings only for the file: momentum ({DEFAULTS['momentum']}), lr_step (epochs between
step decays; default a third of the run), lr_gamma ({DEFAULTS['lr_gamma']}), head_lr_mult
({DEFAULTS['head_lr_mult']}: learning-rate multiplier of the heads on a pretrained backbone), output.

\b
Default backbone: the method's own (hegh: cbam-cnn), else small-cnn for in-memory image sets up
to 32 px (fashion-mnist, mnist, cifar10; pixels for the closed-form lsh/itq) and pretrained
efficientnet-lite0 for image folders and list files. The run folder gets config.json (effective
config), split.npz, metrics.jsonl, checkpoint.pt (every epoch) and model.pt.
"""


@click.command(epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--data", help="fashion-mnist | mnist | cifar10 | image FOLDER | LIST.txt | FEATURES.h5")
@click.option("--method", type=click.Choice(method_names()), help="Hashing method (see --list-methods).")
@click.option("--bits", type=int, help=f"Code length  [default: {DEFAULTS['bits']}]")
@click.option("-o", "--output", type=click.Path(file_okay=False, path_type=Path), help="Run folder to create (or resume).")
@click.option("--protocol", type=click.Choice(PROTOCOLS),
              help="Split: full (the data set's own train/test), per-class, random  [default: full where the data has a split]")
@click.option("--queries-per-class", type=int, help=f"per-class/random: queries per class  [default: {DEFAULTS['queries_per_class']}]")
@click.option("--train-per-class", type=int, help=f"per-class/random: training items per class  [default: {DEFAULTS['train_per_class']}]")
@click.option("--limit", type=int, help="Train on a random subset of this many training items (quick runs).")
@click.option("--backbone", type=click.Choice(backbone_names()), help="Network before the hash layer  [default: from the data]")
@click.option("--pretrained/--no-pretrained", default=None, help="Start from ImageNet weights.")
@click.option("--weights", type=click.Path(dir_okay=False), help="Backbone weights (state-dict file) to start from.")
@click.option("--cbam/--no-cbam", default=None, help="cbam-cnn with or without its CBAM modules (HEGH ablation).")
@click.option("--no-pretrain", is_flag=True, default=None, help="expo: skip classification pre-training.")
@click.option("--param", "params", multiple=True, metavar="KEY=VALUE", help="Method hyper-parameter (repeatable).")
@click.option("--epochs", type=int, help=f"Training epochs  [default: {DEFAULTS['epochs']}, or the method's]")
@click.option("--batch-size", type=int, help=f"[default: {DEFAULTS['batch_size']}, or the method's]")
@click.option("--lr", type=float, help=f"Learning rate  [default: {DEFAULTS['lr']}, or the method's]")
@click.option("--optimizer", type=click.Choice(["adam", "sgd"]), help=f"[default: {DEFAULTS['optimizer']}, or the method's]")
@click.option("--weight-decay", type=float, help=f"[default: {DEFAULTS['weight_decay']}, or the method's]")
@click.option("--lr-decay", type=click.Choice(["cosine", "step", "none"]), help=f"[default: {DEFAULTS['lr_decay']}, or the method's]")
@click.option("--device", help="auto | cpu | cuda | cuda:N  [default: auto (CUDA when available)]")
@click.option("--precision", type=click.Choice(["auto", "mixed", "float32"]),
              help="Mixed precision: float16 on CUDA, bfloat16 on the CPU  [default: auto (CUDA, and CPUs with native bfloat16)]")
@click.option("--seed", type=int, help=f"Seed of the split, initialisation and shuffling  [default: {DEFAULTS['seed']}]")
@click.option("--data-dir", type=click.Path(file_okay=False), help="Where fashion-mnist / mnist / cifar10 are looked for first.")
@click.option("--workers", type=int, help="Data-loading processes  [default: 0 for in-memory data, more for image files]")
@click.option("--threads", type=int, help="CPU threads  [default: all CPUs, or $OMP_NUM_THREADS]")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), help="TOML file of settings.")
@click.option("--resume", is_flag=True, help="Continue the run in -o from its last checkpoint.")
@click.option("--list-methods", is_flag=True, is_eager=True, expose_value=False, callback=_list_methods,
              help="List the methods, their papers and parameters, and exit.")
@click.pass_context
def train(ctx: click.Context, output: Path | None, params: tuple[str, ...], config_file: str | None, resume: bool,
          **options: Any) -> None:
    """Train a hashing network on labelled images and save it in a run folder."""
    from dhash.learn.run import Run
    from dhash.learn.train import TrainingInterrupted, effective_config, train as run_training

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
    except TrainingInterrupted as exc:
        console.print(f"[yellow]{exc}", highlight=False, soft_wrap=True)
        ctx.exit(130)
    except KeyboardInterrupt:
        hint = f"; continue with: dhash train -o {output} --resume" if run.config.exists() else ""
        console.print(f"[yellow]interrupted{hint}", highlight=False, soft_wrap=True)
        ctx.exit(130)
    console.print(f"[green]saved[/] {model}", highlight=False, soft_wrap=True)
    data = config["data"]
    console.print(f"next: dhash encode {data} --model {model} --split database -o database.h5", highlight=False, soft_wrap=True)
