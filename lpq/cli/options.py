"""Options shared by several subcommands, declared once."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from pydantic import BaseModel
from rich.table import Table


class Scheme(StrEnum):
    none = "none"
    mr = "mr"
    ms = "ms"


class Values(StrEnum):
    f32 = "f32"
    f16 = "f16"
    i8 = "i8"
    i4 = "i4"


class Mix(StrEnum):
    cutmix = "cutmix"
    mixup = "mixup"
    none = "none"


class Strategy(StrEnum):
    cover = "cover"
    random = "random"
    first = "first"


class Batching(StrEnum):
    classwise = "classwise"
    mixed = "mixed"


class Init(StrEnum):
    noise = "noise"
    real = "real"


class Amp(StrEnum):
    auto = "auto"
    none = "none"
    bf16 = "bf16"
    fp16 = "fp16"


class Layout(StrEnum):
    sre2l = "sre2l"


class Optimizer(StrEnum):
    adamw = "adamw"
    sgd = "sgd"


class Targets(StrEnum):
    soft = "soft"
    hard = "hard"


class CaFit(StrEnum):
    first_batches = "first-batches"
    last_batch = "last-batch"


class Schedule(StrEnum):
    none = "none"
    step = "step"
    cosine = "cosine"
    reverse_step = "reverse-step"
    reverse_cosine = "reverse-cosine"


DataOpt = Annotated[str, typer.Option("--data", help="digits, cifar10, cifar100, or imagefolder:PATH (or a PATH).")]
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
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as one JSON document.")]
TeacherOpt = Annotated[
    str | None,
    typer.Option(help="Teacher file from lpq squeeze, or pretrained weights (torchvision:resnet18.IMAGENET1K_V1)."),
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


def result_table(title: str, result: BaseModel) -> Table:
    """A two-column table of a result model's fields."""
    t = Table(title=title, show_header=False, title_justify="left")
    t.add_column(style="bold")
    t.add_column()
    for key, value in _flat(result.model_dump()):
        t.add_row(key.replace("_", " "), f"{value:.4g}" if isinstance(value, float) else str(value))
    return t


def _flat(fields: dict, prefix: str = "") -> list[tuple[str, object]]:
    """Nested result fields as (``outer inner``, value) rows."""
    rows: list[tuple[str, object]] = []
    for key, value in fields.items():
        name = f"{prefix}{key}"
        rows += _flat(value, name + " ") if isinstance(value, dict) else [(name, value)]
    return rows
