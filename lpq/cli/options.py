"""The command line's own options (output, --config) and its renderings of results; the options of the work are
the config models' fields (lpq.configs)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, get_args

import typer
from pydantic import BaseModel
from rich.table import Table

if TYPE_CHECKING:
    from lpq.method.fidelity import BudgetChoice


def choice(name: str, literal: object) -> type[StrEnum]:
    """The option enum of a closed choice, built from its one definition (a Literal); members are named for
    their values, '-' as '_'."""
    return StrEnum(name, [(v.replace("-", "_"), v) for v in get_args(literal)])


QuietOpt = Annotated[
    bool, typer.Option("--quiet", "-q", help="No progress output (accepted by every command, for scripts).")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as one JSON document.")]
ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        exists=True,
        dir_okay=False,
        help="Option values from a TOML file (or a run's config.json); options given on the command line win.",
    ),
]


def result_table(title: str, result: BaseModel, hide: frozenset[str] = frozenset()) -> Table:
    """A two-column table of a result model's fields, but those in ``hide`` (a table of their own)."""
    t = Table(title=title, show_header=False, title_justify="left")
    t.add_column(style="bold")
    t.add_column()
    for key, value in _flat(result.model_dump(exclude={"notes", *hide})):  # notes are printed as warnings
        t.add_row(key.replace("_", " "), with_unit(key, value))
    return t


def with_unit(key: str, value: object) -> str:
    """A result value with the unit its field name implies (B, s, %, /s, x) and a precision that reads."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if key.endswith("bytes") or key.endswith("bytes_before") or key.endswith("bytes_after"):
        return f"{value:,.0f} B"
    if key.endswith("seconds"):
        return f"{value:.3g} s" if value < 10 else f"{value:,.1f} s"
    if key.endswith(("per_second", "_per_s")):
        return f"{value:,.1f} /s"
    if key.endswith(("image_size", "input_size")):
        return f"{value} px"
    if key.endswith(("top1", "top5")):
        return f"{value:.2f} %"
    if key.endswith("share"):
        return f"{100 * value:.1f} %"
    if key.endswith(("smaller_by", "compression", "ratio")) or key.startswith("compression"):
        return f"x{value:.3g}"
    return f"{value:,}" if isinstance(value, int) else f"{value:.4g}"


def _flat(fields: dict, prefix: str = "") -> list[tuple[str, object]]:
    """Nested result fields as (``outer inner``, value) rows."""
    rows: list[tuple[str, object]] = []
    for key, value in fields.items():
        name = f"{prefix}{key}"
        rows += _flat(value, name + " ") if isinstance(value, dict) else [(name, value)]
    return rows


def choice_table(choice: BudgetChoice) -> Table:
    """Every code's best fit at the budget, the chosen one first, with the distances that chose it."""
    from lpq.method.fidelity import GOOD_TV

    t0, t1 = choice.temperatures[0], choice.temperatures[-1]
    tried = ", ".join(
        f"x{p.pruning:g} " + ("nothing fits" if p.code is None else f"{p.code} TV {p.tv_mean:.3f}")
        for p in choice.prunings
    )
    why, more = (
        ("the code asked for, its largest k that fits", "more only where it does not fit")
        if choice.named
        else (f"least total variation from the full targets over T={t0:g}..{t1:g}", f"more while TV > {GOOD_TV:g}")
    )
    t = Table(
        title=f"x{choice.budget:g} at pruning x{choice.pruning:g}: {choice.allowed_view_bytes:.1f} B per stored view "
        f"({choice.reserved_view_bytes:.1f} B more for the file's own overhead); chose {choice.chosen.code} ({why}; "
        f"measured on {choice.views} views)",
        caption=f"prunings tried (the authors' x10 first, {more}): {tried}" if tried else None,
        title_justify="left",
        caption_justify="left",
    )
    for col in ("code", "B/view", "TV mean", f"TV T={t0:g}", f"TV T={t1:g}", f"KL T={t0:g}", f"KL T={t1:g}"):
        t.add_column(col, justify="left" if col == "code" else "right")
    for f in sorted(choice.tried, key=lambda f: f.tv_mean):
        kl = ["inf" if v is None else f"{v:.4f}" for v in (f.kl_at_start, f.kl_at_floor)]
        t.add_row(f.code, str(f.view_bytes), f"{f.tv_mean:.3f}", f"{f.tv_at_start:.3f}", f"{f.tv_at_floor:.3f}", *kl)
    return t
