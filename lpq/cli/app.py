"""The `lpq` command line: a thin skin over the library, one small module per subcommand."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from lpq import __version__
from lpq.cli.common import OneLineUsage
from lpq.cli.compare import compare
from lpq.cli.demo import demo
from lpq.cli.exchange import export, import_
from lpq.cli.inspect import inspect
from lpq.cli.prune import prune
from lpq.cli.quantize import quantize
from lpq.cli.relabel import relabel
from lpq.cli.squeeze import squeeze
from lpq.cli.synth import synth
from lpq.cli.train import train
from lpq.cpus import configure_threads
from lpq.files import CACHE_ENV
from lpq.progress import LOG_EVERY

COMPUTES = {"squeeze", "synth", "relabel", "train", "demo", "import", "export"}  # commands that choose threads

app = typer.Typer(
    name="lpq",
    no_args_is_help=True,
    help="Compact soft labels for dataset distillation (LPQLD): squeeze, synth, relabel, prune, quantize, train.",
    pretty_exceptions_enable=False,
    cls=OneLineUsage,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"lpq {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    traceback: Annotated[bool, typer.Option("--traceback", help="Show full tracebacks (for bug reports).")] = False,
    log_every: Annotated[
        float,
        typer.Option(
            "--log-every", min=1, help="Seconds between progress lines when stderr is not a terminal (files, CI)."
        ),
    ] = LOG_EVERY,
    threads: Annotated[
        int | None,
        typer.Option(
            "--threads",
            min=1,
            help="CPU threads to compute with (default: OMP_NUM_THREADS, else the usable CPUs other work leaves free).",
        ),
    ] = None,
    cache_dir: Annotated[
        Path | None,
        typer.Option(
            "--cache-dir",
            file_okay=False,
            help="Where decoded-image caches go (default $XDG_CACHE_HOME/lpq or ~/.cache/lpq; env LPQ_CACHE_DIR).",
        ),
    ] = None,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """lpq: make dataset distillation's soft labels small (pruning + top-k quantization) and train on them."""
    ctx.obj = {"traceback": traceback, "log_every": log_every}
    if ctx.invoked_subcommand in COMPUTES:
        configure_threads(threads)  # before the command imports torch
    if cache_dir is not None:  # the environment reaches DataLoader workers and the library alike
        os.environ[CACHE_ENV] = str(cache_dir.expanduser().resolve())


app.command()(squeeze)
app.command()(synth)
app.command()(relabel)
app.command()(prune)
app.command()(quantize)
app.command()(train)
app.command()(inspect)
app.command()(export)
app.command("import")(import_)
app.command()(compare)
app.command()(demo)


def main() -> None:
    app()
