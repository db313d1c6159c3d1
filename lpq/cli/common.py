"""What every subcommand shares: exit codes, the two consoles, the error funnel and JSON output."""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable
from enum import IntEnum
from typing import Any, ParamSpec, TypeVar

import typer
from pydantic import BaseModel, ValidationError
from rich.console import Console
from typer._click.globals import get_current_context  # Typer's bundled Click, not the click package

from lpq.errors import LpqError

P = ParamSpec("P")
R = TypeVar("R")


class ExitCode(IntEnum):
    OK = 0
    FAILURE = 1
    BAD_INPUT = 2
    INTERRUPTED = 130


def stdout() -> Console:
    # Piped output keeps whole table rows (Rich would otherwise assume 80 columns).
    return Console(soft_wrap=True, width=None if sys.stdout.isatty() else 160)


def stderr() -> Console:
    return Console(stderr=True, soft_wrap=True)


def funnel(fn: Callable[P, R]) -> Callable[P, R]:
    """The one place library errors become CLI errors: one line on stderr and an exit code.

    ``lpq --traceback CMD`` shows the full trace instead, for bug reports.
    """

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except LpqError as e:
            if _traceback_wanted():
                raise
            _say(str(e))
            raise typer.Exit(ExitCode.BAD_INPUT) from None
        except ValidationError as e:
            if _traceback_wanted():
                raise
            first = e.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            _say(f"bad-option: {where + ': ' if where else ''}{first['msg']}")
            raise typer.Exit(ExitCode.BAD_INPUT) from None
        except OSError as e:
            if _traceback_wanted():
                raise
            _say(f"io-error: {e.strerror or e} ({e.filename or 'no file'})")
            raise typer.Exit(ExitCode.FAILURE) from None
        except KeyboardInterrupt:
            stderr().print("interrupted; finished work is kept (rerun with --resume to continue)")
            raise typer.Exit(ExitCode.INTERRUPTED) from None

    return wrapper


def _say(line: str) -> None:
    stderr().print(f"[bold red]error[/]: {line}", markup=True, highlight=False)


def _traceback_wanted() -> bool:
    ctx = get_current_context(silent=True)
    return bool(ctx and ctx.find_root().params.get("traceback"))


def is_main_process() -> bool:
    """Rank 0 under torchrun (or a plain run): the one process that prints results."""
    return int(os.environ.get("RANK", "0")) == 0


def print_json(data: BaseModel | dict[str, Any] | list[Any]) -> None:
    """One JSON document on stdout, for scripts."""
    text = data.model_dump_json(indent=2) if isinstance(data, BaseModel) else json.dumps(data, indent=2)
    sys.stdout.write(text + "\n")


def show_progress(quiet: bool) -> bool:
    """Progress bars only for a person watching: not with --quiet, not when stderr is not a terminal."""
    return not quiet and sys.stderr.isatty()
