"""`lpq synth`'s settings."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, Field, field_validator, model_validator

from lpq.choices import SMALL_INPUT, Batching, Init
from lpq.configs import Amp, Cli, Device, Resume, Root, Seed, Teacher, Tensorboard, Wandb

OPT = Cli(panel="Optimization (defaults: the authors' values for the input size)")
SMALL, LARGE = {"lr": 0.1, "r_bn": 0.05}, {"lr": 0.25, "r_bn": 0.01}  # the authors': Tiny-ImageNet, ImageNet-1K


class SynthConfig(BaseModel):
    teacher: Annotated[Teacher, Field(description="Teacher file from lpq squeeze (.lpqt).")]
    output: Annotated[
        Path, Field(description="Folder for the image set (ImageFolder of PNGs)."), Cli(flags=("-o", "--output"))
    ] = Path("syn")
    ipc: Annotated[int, Field(ge=1, description="Images per class.")] = 10
    iterations: Annotated[
        int,
        Field(ge=0, description="Steps per class (authors: 4,000; 0 keeps the initial images, --init real only)."),
        OPT,
    ] = 1000
    init: Annotated[
        Init,
        Field(
            description="noise, or real: random real images of the class (with --iterations 0: the random-real "
            "baseline)."
        ),
        OPT,
    ] = "noise"
    data: Annotated[
        str | None, Field(description="Real images for --init real (default: the teacher's data)."), OPT
    ] = None
    root: Root = None
    lr: Annotated[
        float | None,
        Field(gt=0, description=f"Adam lr ({LARGE['lr']} at 224 px, {SMALL['lr']} at <= {SMALL_INPUT} px)."),
        OPT,
    ] = None
    r_bn: Annotated[
        float | None,
        Field(ge=0, description=f"BN loss weight ({LARGE['r_bn']} at 224 px, {SMALL['r_bn']} at <= {SMALL_INPUT} px)."),
        OPT,
    ] = None
    first_bn_multiplier: Annotated[
        float, Field(ge=0, description="Weight of the first BN layer's loss, relative to the others."), OPT
    ] = 10.0
    jitter: Annotated[
        int | None, Field(ge=0, description="Max random roll in pixels (default input size / 8)."), OPT
    ] = None
    crop_scale: Annotated[tuple[float, float], Field(description="RandomResizedCrop area range of each step."), OPT] = (
        0.08,
        1.0,
    )
    batching: Annotated[Batching, Field(description="classwise (LPQLD) or mixed (SRe2L baseline)."), OPT] = "classwise"
    classes: Annotated[
        tuple[int, int] | None,
        Field(description="Only classes START:STOP (half-open)."),
        Cli(metavar="START:STOP", text=True),
    ] = None
    seed: Seed = 0
    resume: Resume = False
    tensorboard: Tensorboard = None
    wandb: Wandb = None
    device: Device = "auto"
    amp: Amp = "auto"

    @field_validator("classes", mode="before")
    @classmethod
    def _class_range(cls, value: object) -> object:
        """'START:STOP' (as the CLI takes it) -> (START, STOP)."""
        if not isinstance(value, str):
            return value
        try:
            start, stop = (int(v) for v in value.split(":"))
        except ValueError:
            raise ValueError(f"{value!r} is not START:STOP") from None
        return start, stop

    @model_validator(mode="after")
    def _zero_iterations_need_real_images(self) -> SynthConfig:
        if self.iterations == 0 and self.init != "real":
            raise ValueError("--iterations 0 keeps the initial images: it needs --init real (noise would stay noise)")
        return self

    def resolved(self, image_size: int) -> SynthConfig:
        """The authors' settings for the teacher's input size where none are given."""
        authors = SMALL if image_size <= SMALL_INPUT else LARGE
        return self.model_copy(
            update={
                "lr": self.lr if self.lr is not None else authors["lr"],
                "r_bn": self.r_bn if self.r_bn is not None else authors["r_bn"],
                "jitter": self.jitter if self.jitter is not None else max(1, image_size // 8),
            }
        )

    def fingerprint(self) -> dict[str, object]:
        """The settings two runs must share to be continued by one another."""
        return self.model_dump(
            mode="json", exclude={"output", "resume", "device", "classes", "teacher", "tensorboard", "wandb"}
        )
