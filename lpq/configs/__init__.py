"""What each command does, declared once: one pydantic model per command, whose fields are its options.

A field's type, default, bounds and description are the option; the command line is generated from the model
(lpq.cli.common.command), a ``--config`` file and a Python caller fill the same fields. What only the command line
needs (a short flag, a help panel, a metavar, a positional argument) rides on the field as ``Cli`` metadata:

    epochs: Annotated[int, Field(ge=1, description="Training epochs."), Cli(panel=OPT)] = 300

The models are torch-free (and typer-free), so ``lpq --help`` and a config check cost no torch import; the stages
resolve them into the plans they run (lpq.configs.train.TrainPlan).
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field

from lpq.choices import Amp as AmpKind
from lpq.choices import TeacherClasses as TeacherClassesKind
from lpq.format.header import DEFAULT_K


@dataclass(frozen=True)
class Cli:
    """How a config field appears on the command line (its name, type, default and help are the field's)."""

    flags: tuple[str, ...] = ()  # ("-o", "--output"), or ("--resume",): a flag without a --no- twin
    panel: str | None = None  # the help section it is listed under
    metavar: str | None = None
    argument: bool = False  # positional
    exists: Literal["file", "folder"] | None = None  # a path that must already be there
    text: bool = False  # taken as text and converted by the model (K|auto, FLOAT|follow, xN)

    @classmethod
    def of(cls, metadata: list[object]) -> Cli:
        """A field's presentation: its ``Cli`` entries merged, the outer one (a panel given where an alias is used)
        adding to the inner (the alias's own)."""
        merged = cls()
        for m in metadata:
            if isinstance(m, Cli):
                given = {f.name: getattr(m, f.name) for f in fields(m) if getattr(m, f.name) != f.default}
                merged = replace(merged, **given)
        return merged


# Options several commands share, each declared here once.
Data = Annotated[
    str,
    Field(
        description="digits, cifar10, cifar100, imagefolder:PATH (or a PATH), wds:SHARD-PATTERN, or "
        "hf:NAME_OR_PATH[:SPLIT]."
    ),
    Cli(flags=("--data",)),
]
Root = Annotated[Path | None, Field(description="Where cifar10/cifar100 live (torchvision layout).")]
Seed = Annotated[int, Field(ge=0, description="Random seed.")]
Device = Annotated[str, Field(description="auto (CUDA when present), cpu, cuda, cuda:1, ...")]
Amp = Annotated[
    AmpKind,
    Field(
        description="Mixed precision: auto (on CUDA bf16 where it trains, fp16 in relabel; none on CPU), none, bf16, "
        "fp16."
    ),
]
Resume = Annotated[
    bool, Field(description="Continue an interrupted run with the same settings."), Cli(flags=("--resume",))
]
Workers = Annotated[
    int | None, Field(ge=0, description="Worker processes preparing images (default from the CPU count).")
]
Tensorboard = Annotated[
    Path | None,
    Field(description="Also write metrics (and synth's image grid) to TensorBoard in this folder (lpq[tensorboard])."),
]
Wandb = Annotated[
    str | None,
    Field(
        description="Also log metrics (and synth's image grid) to this Weights & Biases project (lpq[wandb]; offline "
        "with WANDB_MODE=offline)."
    ),
    Cli(metavar="PROJECT"),
]
Teacher = Annotated[
    Path | str | None,
    Field(description="Teacher file from lpq squeeze, or pretrained weights (torchvision:resnet18.IMAGENET1K_V1)."),
    Cli(text=True),
]
TeacherClasses = Annotated[
    TeacherClassesKind | None,
    Field(
        description="Keep only the rows of the pretrained head whose classes the data has, in the data's order: "
        "imagenet1k for a 1,000-class ImageNet teacher on folders named by wnids (Tiny-ImageNet, ImageNette, ...)."
    ),
]
TopK = Annotated[
    Annotated[int, Field(ge=1)] | Literal["auto"] | None,
    Field(
        description=f"Classes kept per sample (default {DEFAULT_K}; implies MR unless --scheme ms), or auto (lpq "
        "quantize: the smallest k keeping --keep-mass)."
    ),
    Cli(metavar="K|auto", text=True),
]
TailPoints = Annotated[
    int,
    Field(
        ge=2,
        le=255,
        description="With --scheme tail: points of the sorted logits outside the top k, stored per sample, from "
        "which training restores those classes' mass at every temperature.",
    ),
]
SampleTemp = Annotated[
    float,
    Field(
        gt=0,
        description="With --scheme sampled: the softmax temperature the k classes are drawn at (with replacement).",
    ),
]
MsTemp = Annotated[float, Field(gt=0, description="With --scheme ms: the softmax temperature of the probabilities.")]
Rank = Annotated[
    int,
    Field(
        ge=0,
        le=255,
        description="With --scheme basis: coefficients per sample on a basis of the file's logits (their mean and "
        "first principal directions), which give the classes outside the top k logits of their own.",
    ),
]


def _times(value: object) -> object:
    """xN (as the command line writes a budget) -> N."""
    if isinstance(value, str):
        try:
            return float(value.removeprefix("x"))
        except ValueError:
            raise ValueError(f"{value!r} is not xN (x100: a hundred times fewer bytes)") from None
    return value


Budget = Annotated[
    Annotated[float, BeforeValidator(_times), Field(gt=1)] | None,
    Field(
        description="N times fewer bytes than full 8-bit labels of every view, pruning counted: chooses the code and "
        "k whose targets stay closest to the full ones over the labels' DKR temperatures (measured on the labels' "
        "own logits; 8-bit codes), and says why; with --scheme, that code's largest k at the first pruning it fits."
    ),
    Cli(metavar="xN", text=True),
]
