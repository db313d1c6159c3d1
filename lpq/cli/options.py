"""Options shared by several subcommands, declared once."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, get_args

import typer
from pydantic import BaseModel
from rich.table import Table

from lpq import choices
from lpq.format import header

if TYPE_CHECKING:
    from lpq.method.fidelity import BudgetChoice


def choice(name: str, literal: object) -> type[StrEnum]:
    """The option enum of a closed choice, built from its one definition (a Literal); members are named for
    their values, '-' as '_'."""
    return StrEnum(name, [(v.replace("-", "_"), v) for v in get_args(literal)])


Scheme = choice("Scheme", header.Scheme)
Values = choice("Values", header.ValueKind)
Mix = choice("Mix", header.MixKind)
Strategy = choice("Strategy", header.KeepStrategy)
Schedule = choice("Schedule", header.ScheduleKind)
Amp = choice("Amp", choices.Amp)
CaFit = choice("CaFit", choices.CaFit)
Optimizer = choice("Optimizer", choices.Optimizer)
Targets = choice("Targets", choices.Targets)
Batching = choice("Batching", choices.Batching)
Init = choice("Init", choices.Init)
Layout = choice("Layout", choices.Layout)
TeacherClasses = choice("TeacherClasses", choices.TeacherClasses)


DataOpt = Annotated[
    str,
    typer.Option(
        "--data",
        help="digits, cifar10, cifar100, imagefolder:PATH (or a PATH), wds:SHARD-PATTERN, or hf:NAME_OR_PATH[:SPLIT].",
    ),
]
RootOpt = Annotated[Path | None, typer.Option(help="Where cifar10/cifar100 live (torchvision layout).")]
DownloadOpt = Annotated[bool, typer.Option("--download", help="Download cifar10/cifar100 if missing (needs internet).")]
SeedOpt = Annotated[int, typer.Option(min=0, help="Random seed.")]
DeviceOpt = Annotated[str, typer.Option(help="auto (CUDA when present), cpu, cuda, cuda:1, ...")]
AmpOpt = Annotated[
    Amp,
    typer.Option(
        help="Mixed precision: auto (on CUDA bf16 where it trains, fp16 in relabel; none on CPU), none, bf16, fp16."
    ),
]
QuietOpt = Annotated[
    bool, typer.Option("--quiet", "-q", help="No progress output (accepted by every command, for scripts).")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as one JSON document.")]
TeacherOpt = Annotated[
    str | None,
    typer.Option(help="Teacher file from lpq squeeze, or pretrained weights (torchvision:resnet18.IMAGENET1K_V1)."),
]
TeacherClassesOpt = Annotated[
    TeacherClasses | None,
    typer.Option(
        help="Keep only the rows of the pretrained head whose classes the data has, in the data's order: imagenet1k "
        "for a 1,000-class ImageNet teacher on folders named by wnids (Tiny-ImageNet, ImageNette, ...)."
    ),
]
TailOpt = Annotated[
    int,
    typer.Option(
        min=2,
        max=255,
        help="With --scheme tail: points of the sorted logits outside the top k, stored per sample, from which "
        "training restores those classes' mass at every temperature.",
    ),
]
SampleTempOpt = Annotated[
    float,
    typer.Option(help="With --scheme sampled: the softmax temperature the k classes are drawn at (with replacement)."),
]


def _budget(value: str) -> float:
    try:
        return float(value.removeprefix("x"))
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not xN (x100: a hundred times fewer bytes)") from None


BudgetOpt = Annotated[
    float | None,
    typer.Option(
        parser=_budget,
        metavar="xN",
        help="N times fewer bytes than full 8-bit labels of every view, pruning counted: chooses the code and k "
        "whose targets stay closest to the full ones over the labels' DKR temperatures (measured on the labels' "
        "own logits; 8-bit codes), and says why.",
    ),
]
TopKOpt = Annotated[
    str | None,
    typer.Option(
        metavar="K|auto",
        help="Classes kept per sample (default 10; implies MR unless --scheme ms), or auto (lpq quantize: the "
        "smallest k keeping --keep-mass).",
    ),
]
TensorboardOpt = Annotated[
    Path | None,
    typer.Option(help="Also write metrics (and synth's image grid) to TensorBoard in this folder (lpq[tensorboard])."),
]
WandbOpt = Annotated[
    str | None,
    typer.Option(
        metavar="PROJECT",
        help="Also log metrics (and synth's image grid) to this Weights & Biases project (lpq[wandb]; offline with "
        "WANDB_MODE=offline).",
    ),
]
ResumeOpt = Annotated[bool, typer.Option("--resume", help="Continue an interrupted run with the same settings.")]
ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        exists=True,
        dir_okay=False,
        help="Option values from a TOML file (or a run's config.json); options given on the command line win.",
    ),
]
WorkersOpt = Annotated[
    int | None, typer.Option(min=0, help="Worker processes preparing images (default from the CPU count).")
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
    t0, t1 = choice.temperatures[0], choice.temperatures[-1]
    t = Table(
        title=f"x{choice.budget:g} at pruning x{choice.pruning:g}: {choice.allowed_view_bytes:.1f} B per stored view; "
        f"chose {choice.chosen.code} (least total variation from the full targets over T={t0:g}..{t1:g}, "
        f"{choice.views} views)",
        title_justify="left",
    )
    for col in ("code", "B/view", "TV mean", f"TV T={t0:g}", f"TV T={t1:g}", f"KL T={t0:g}", f"KL T={t1:g}"):
        t.add_column(col, justify="left" if col == "code" else "right")
    for f in sorted(choice.tried, key=lambda f: f.tv_mean):
        kl = ["inf" if v is None else f"{v:.4f}" for v in (f.kl_at_start, f.kl_at_floor)]
        t.add_row(f.code, str(f.view_bytes), f"{f.tv_mean:.3f}", f"{f.tv_at_start:.3f}", f"{f.tv_at_floor:.3f}", *kl)
    return t
