"""What every subcommand shares: exit codes, the two consoles, the error funnel and JSON output."""

from __future__ import annotations

import functools
import inspect
import json
import sys
import tomllib
import traceback
import warnings
from collections.abc import Callable
from enum import Enum, IntEnum
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Literal, ParamSpec, TypeVar, Union, get_args, get_origin, get_type_hints

import typer
from annotated_types import Ge, Le
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

from lpq.cli.options import ConfigOpt, choice
from lpq.configs import Cli
from lpq.errors import LpqError, LpqWarning
from lpq.format.coverage import Coverage
from lpq.progress import LOG_EVERY, Show

_python_warning = warnings.showwarning
P = ParamSpec("P")
R = TypeVar("R")
M = TypeVar("M", bound=BaseModel)


class ExitCode(IntEnum):
    """0 done; 2 a one-line error the user can act on (bad input, options, paths, a full disk); 130 interrupted
    (finished work kept). 1 is left to the unexpected: a traceback, a bug to report."""

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

    Every command takes ``ctx: typer.Context``; ``lpq --traceback CMD`` (kept in the root context's ``obj``)
    shows the full trace instead, for bug reports.
    """

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        # Typer hands commands the parser's own context class, of which typer.Context is a subclass: duck-typed.
        ctx = kwargs.get("ctx")
        params: dict[str, Any] = getattr(ctx, "params", {})
        root = ctx.find_root().obj if hasattr(ctx, "find_root") else None
        wants_trace = isinstance(root, dict) and bool(root.get("traceback"))
        try:
            return fn(*args, **kwargs)
        except LpqError as e:
            if wants_trace:
                raise
            say(str(e))
            _release(e)
            raise typer.Exit(ExitCode.BAD_INPUT) from None
        except OSError as e:
            if wants_trace:
                raise
            say(f"io-error: {os_error_line(e)}")
            _release(e)
            raise typer.Exit(ExitCode.BAD_INPUT) from None
        except KeyboardInterrupt:
            resumable = "resume" in params
            stderr().print(
                "interrupted; finished work is kept" + (" (rerun with --resume to continue)" if resumable else "")
            )
            raise typer.Exit(ExitCode.INTERRUPTED) from None

    return wrapper


def _release(e: BaseException) -> None:
    """Free what the failed command's frames hold, now that its error is said: a DataLoader iterator among them
    shuts its workers down at once, where the garbage collector, reaching it later in a program that runs
    commands in-process, closes its queues first and waits 5 s for each worker."""
    traceback.clear_frames(e.__traceback__)


def os_error_line(e: OSError) -> str:
    """An OS error in one line naming its file. One raised in a DataLoader worker reaches the main process rebuilt
    from its traceback text ("Caught FileNotFoundError in DataLoader worker process 0. Original Traceback ..."):
    its last line is the error as the worker saw it."""
    if e.strerror:
        return f"{e.strerror} ({e.filename})" if e.filename else e.strerror
    text = str(e)
    if "Original Traceback" in text:
        last = [line for line in text.splitlines() if line.strip()][-1]
        return last.split(": ", 1)[1] if last.startswith(type(e).__name__ + ":") else last
    return text


def say(line: str) -> None:
    """An error line on stderr (the command failed)."""
    stderr().print(f"[bold red]error[/]: {escape(line)}", markup=True, highlight=False)  # a path may hold [..]


class OneLineUsage(TyperGroup):
    """The command-line parser's own errors (a missing argument, a value outside its choices, an unknown option,
    a path that does not exist) as the library's errors are: one line on stderr naming the help, exit 2."""

    def main(  # type: ignore[override]
        self,
        args: list[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        for command in (self, *self.commands.values()):
            _flags_show_no_value(command)
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, **extra)
        shown = warnings.showwarning  # a caller's own (lpq's CLI run inside a program) comes back afterwards
        warnings.showwarning = _show_warning
        try:
            code = super().main(args, prog_name, complete_var, False, **extra)
        except Exception as e:
            if not callable(getattr(e, "format_message", None)) or not isinstance(getattr(e, "exit_code", None), int):
                raise
            if type(e).__name__ != "NoArgsIsHelpError":  # that one has printed the help already
                where = getattr(getattr(e, "ctx", None), "command_path", None) or "lpq"
                old = str(getattr(e, "option_name", "") or "").lstrip("-").replace("-", "_")
                renamed = f"; it is now --{RENAMED[old].replace('_', '-')}" if old in RENAMED else ""
                say(f"bad-usage: {e.format_message()}{renamed} ({where} --help)")
            sys.exit(e.exit_code)
        finally:
            warnings.showwarning = shown
        sys.exit(code if isinstance(code, int) else ExitCode.OK)


def _flags_show_no_value(command: Any) -> None:
    """Flags (--json, --resume, --help, ...) take no value: their help shows none (Typer writes <bool>)."""
    for p in command.params:
        if getattr(p, "is_flag", False) and p.metavar is None:
            p.metavar = ""
    make_help = command.get_help_option

    def help_option(ctx: Any) -> Any:
        option = make_help(ctx)
        if option is not None:
            option.metavar = ""
        return option

    command.get_help_option = help_option


def _show_warning(message: Warning | str, category: type[Warning], *_args: Any, **_kwargs: Any) -> None:
    """The library's warnings (LpqWarning) as one line each; others as Python prints them."""
    if issubclass(category, LpqWarning):
        warn(str(message))
    else:
        _python_warning(message, category, *_args, **_kwargs)


def warn(line: str) -> None:
    """A one-line warning on stderr: the command succeeded, but the user should know this."""
    stderr().print(f"[bold yellow]warning[/]: {escape(line)}", markup=True, highlight=False)


def warn_uncovered(coverage: Coverage) -> None:
    """Pruning that leaves images without any label is allowed (x100 of 50 epochs must), but never silent."""
    if coverage.never:
        warn(
            f"{coverage.never} of {coverage.images} images are never labelled: a student never sees them "
            f"({coverage.mean_views:.2f} views per image; --strategy cover labels every image while that is >= 1)"
        )


# Options renamed so that each concept has one spelling (temperatures end in -temp; one data-root option):
# the old names are refused, with the new one named, never kept as aliases.
RENAMED = {"ms_temperature": "ms_temp", "eval_root": "root", "temp_start": "start_temp", "temp_floor": "floor_temp"}


def read_config_file(path: Path) -> dict[str, Any]:
    """Option values from TOML (keys are option names, ``top-k`` or ``top_k``) or a JSON object such as the
    config.json a run wrote."""
    if path.suffix.lower() in (".yaml", ".yml"):
        raise LpqError(
            "config-format",
            f"--config {path} is YAML; lpq reads TOML (.toml) and JSON (a run's config.json)",
            "write the same keys as TOML: top_k = 10, or top-k = 10",
        )
    try:
        text = path.read_text()
        data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (
        OSError,
        UnicodeDecodeError,
        ValueError,
    ) as e:  # tomllib.TOMLDecodeError and JSONDecodeError are ValueErrors
        raise LpqError("config-unreadable", f"cannot read --config {path} ({str(e).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise LpqError("config-unreadable", f"--config {path} holds no table of option values")
    return {str(k).replace("-", "_"): v for k, v in data.items()}


def command(model: type[M]) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """A subcommand whose options are the fields of its config ``model`` (lpq.configs), plus ``--config FILE``.

    The body is ``body(ctx, cfg, **own)``: ``cfg`` the model filled from the command line, then the file, then the
    defaults; ``own`` its output options (--json, --quiet), which are no setting of the work.
    """

    def wrap(body: Callable[..., None]) -> Callable[..., None]:
        hints = get_type_hints(body, include_extras=True)
        own = [p.replace(annotation=hints[p.name]) for p in list(inspect.signature(body).parameters.values())[2:]]
        fields = [_parameter(name, field) for name, field in model.model_fields.items()]
        config = inspect.Parameter("config", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=ConfigOpt)

        @functools.wraps(body)
        def run(ctx: typer.Context, **given: Any) -> None:
            mine = {p.name: given.pop(p.name) for p in own}
            body(ctx, make_config(ctx, model, given, given.pop("config")), **mine)

        ctx = inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context)
        keyword = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in (*fields, config, *own)]
        run.__signature__ = inspect.Signature([ctx, *keyword])  # type: ignore[attr-defined]
        run.__annotations__ = {p.name: p.annotation for p in (ctx, *keyword)}
        return run

    return wrap


def _parameter(name: str, field: FieldInfo) -> inspect.Parameter:
    """The Typer parameter of one config field: its type (closed choices as enums), default, bounds and help."""
    cli = Cli.of(field.metadata)
    kind, optional = _cli_type(name, field.annotation, cli.text)
    default = None if field.is_required() else field.get_default(call_default_factory=True)
    if isinstance(kind, type) and issubclass(kind, Enum) and default is not None:
        default = kind(default)
    bounds: dict[str, Any] = {}
    if kind in (int, float):
        for m in field.metadata:
            bounds.update({"min": m.ge} if isinstance(m, Ge) else {"max": m.le} if isinstance(m, Le) else {})
    shared: dict[str, Any] = {"help": field.description, "metavar": cli.metavar, "rich_help_panel": cli.panel}
    if cli.exists is not None:
        shared |= {"exists": True, "dir_okay": cli.exists == "folder", "file_okay": cli.exists == "file"}
    info = typer.Argument(**shared) if cli.argument else typer.Option(*cli.flags, **shared, **bounds)
    annotation = Annotated[kind | None if optional or default is None else kind, info]  # type: ignore[operator]
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)


def _cli_type(name: str, annotation: Any, text: bool) -> tuple[Any, bool]:
    """(type on the command line, whether it may be left out): a Literal becomes an enum of its values, a
    tuple stays, a value the model converts from text (``text``) is a string."""
    args = get_args(annotation) if get_origin(annotation) in (Union, UnionType) else (annotation,)
    optional = type(None) in args
    args = tuple(a for a in args if a is not type(None))
    if text:
        return str, optional
    if len(args) != 1:
        raise TypeError(f"option {name}: a field of several types is taken as text the model converts (Cli(text=True))")
    (kind,) = args
    if get_origin(kind) is Literal:
        return choice("".join(w.title() for w in name.split("_")), kind), optional
    return kind, optional


def _merged(ctx: typer.Context, given: dict[str, Any], path: Path | None, known: set[str]) -> dict[str, Any]:
    """The command's values: the command line first, then ``--config FILE``, then the defaults. Keys of the file
    must be in ``known``; enums become their values."""
    values = dict(given)
    if path is not None:
        for key, value in read_config_file(Path(path)).items():
            if key not in known:
                hint = f"it is now {RENAMED[key]}" if key in RENAMED and RENAMED[key] in known else ""
                raise LpqError(
                    "config-unknown-key", f"--config {path}: {key!r} is no option of lpq {ctx.info_name}", hint
                )
            source = ctx.get_parameter_source(key)
            if source is None or source.name in ("DEFAULT", "DEFAULT_MAP"):
                values[key] = value
    return {k: v.value if isinstance(v, Enum) else v for k, v in values.items()}


def make_config(ctx: typer.Context, model: type[M], given: dict[str, Any], path: Path | None) -> M:
    """The command's config model from its merged options; invalid values are a ``bad-option`` error, a missing
    input names the option (or argument) that gives it."""
    values = _merged(ctx, given, path, set(model.model_fields))
    required = {name for name, field in model.model_fields.items() if field.is_required()}
    try:  # a required input nobody gave reaches here as None: the model is to say it is missing
        return model.model_validate({k: v for k, v in values.items() if v is not None or k not in required})
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        if first["type"] == "missing":
            raise LpqError("bad-usage", f"missing {where.replace('_', '-')} (lpq {ctx.info_name} --help)") from None
        raise LpqError("bad-option", f"{where.replace('_', '-') + ': ' if where else ''}{first['msg']}") from None


def print_json(data: BaseModel | dict[str, Any] | list[Any]) -> None:
    """One JSON document on stdout, for scripts."""
    text = data.model_dump_json(indent=2) if isinstance(data, BaseModel) else json.dumps(data, indent=2)
    sys.stdout.write(text + "\n")


def show_progress(ctx: typer.Context, quiet: bool) -> Show:
    """Progress for long jobs: a bar on a terminal, a plain line every --log-every seconds (and at each epoch or
    class) off one; nothing with --quiet."""
    every = (ctx.find_root().obj or {}).get("log_every", LOG_EVERY)
    return Show(enabled=not quiet, every=every)
