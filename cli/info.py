"""``dhash info``: the CPU, the search kernels it runs and the one chosen per code length."""
from __future__ import annotations

import json

import click

from dhash import __version__
from dhash.search import _core
from dhash.search.index import available_kernels, cpu_model, default_threads, selected_kernel

BITS = (32, 64, 128, 256, 512, 1024)


@click.command()
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
def info(fmt: str) -> None:
    """Print the CPU, the search kernels compiled in and available, and the kernel chosen per code length."""
    facts = {
        "version": __version__, "cpu": cpu_model(), "threads": default_threads(),
        "kernels_compiled": list(_core.compiled_kernels()), "kernels_available": available_kernels(),
        "kernel_by_bits": {str(b): selected_kernel(bits=b) for b in BITS},
    }
    if fmt == "json":
        click.echo(json.dumps(facts))
        return
    click.echo(f"dhash {facts['version']}\ncpu: {facts['cpu']} ({facts['threads']} threads)")
    click.echo(f"kernels compiled: {', '.join(facts['kernels_compiled'])}")
    click.echo(f"kernels available: {', '.join(facts['kernels_available'])}")
    click.echo("kernel chosen: " + ", ".join(f"{b} bits {k}" for b, k in facts["kernel_by_bits"].items()))
