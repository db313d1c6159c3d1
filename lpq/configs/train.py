"""`lpq train`'s settings as given (`TrainConfig`, the options) and as a run takes them (`TrainPlan`: every default
filled once, the temperature records nested and typed, frozen)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from lpq.choices import CaFit, Optimizer, Targets
from lpq.configs import Amp, Cli, Device, Resume, Root, Seed, Tensorboard, Wandb, Workers
from lpq.format import ScheduleKind, StudentTemp, TempSchedule

OPT = Cli(panel="Optimization")
TEMP = Cli(panel="Temperatures (defaults: the label file's calibration, else the authors')")
TEMPERATURE_OPTIONS = ("temp_schedule", "start_temp", "floor_temp", "temp_factor", "temp_every")
RUN_ONLY = frozenset(
    {
        "output",  # where the run lies: a run folder moved or copied elsewhere resumes
        "resume",
        "stop_after",
        "workers",
        "device",
        "seeds",
        "tensorboard",
        "wandb",
    }
)  # settings that may differ when resuming
Grid = tuple[float, float, int]  # the CA grid: min, max, points


def grid_of(student: StudentTemp) -> Grid:
    return student.grid_min, student.grid_max, student.grid_points


def grid_text(grid: Grid) -> str:
    """A CA grid as --ca-grid spells it."""
    return f"{grid[0]:g}:{grid[1]:g}:{grid[2]}"


DKR = TempSchedule()  # the authors' teacher schedule, where the label file recommends none
CA = StudentTemp()  # the authors' CA grid, where the label file has none
OPTIMIZERS = {"adamw": (1e-3, 0.01), "sgd": (0.2, 1e-4)}  # (lr, weight decay): the authors' ImageNet-1K, Tiny


def _grid_text(value: object) -> object:
    """'MIN:MAX:POINTS' (as the command line writes a grid) -> (MIN, MAX, POINTS)."""
    if not isinstance(value, str):
        return value
    try:
        lo, hi, n = value.split(":")
        return float(lo), float(hi), int(n)
    except ValueError:
        raise ValueError(f"ca-grid {value!r} is not MIN:MAX:POINTS, as {grid_text(grid_of(CA))}") from None


def _grid_ok(grid: Grid) -> Grid:
    if not (0 < grid[0] < grid[1] and grid[2] >= 2 and math.isfinite(grid[1])):
        raise ValueError(f"ca-grid {grid_text(grid)} needs 0 < MIN < MAX and at least 2 points")
    return grid


class TrainConfig(BaseModel):
    """`lpq train`'s options, as given (None: the label file's calibration or the method's default decides)."""

    images: Annotated[
        str,
        Field(description="The distilled image set (folder or --data name) the labels belong to."),
        Cli(argument=True),
    ]
    labels: Annotated[Path, Field(description="A .lpql label file."), Cli(argument=True, exists="file")]
    output: Annotated[Path, Field(description="Run folder."), Cli(flags=("-o", "--output"))] = Path("run")
    model: Annotated[
        str, Field(description="Student: convnet, any torchvision classifier (resnet18, ...) or timm:NAME.")
    ] = "convnet"
    input_size: Annotated[
        int | None,
        Field(
            ge=8,
            description="The student's side S in px: stored views are rendered and test images prepared at S "
            "(default: the teacher's input size).",
        ),
    ] = None
    eval_data: Annotated[
        str | None,
        Field(
            description="Real data whose test split is evaluated (default: the data the images' teacher was "
            "trained on)."
        ),
    ] = None
    root: Root = None
    epochs: Annotated[int, Field(ge=1, description="Training epochs."), OPT] = 300
    optimizer: Annotated[
        Optimizer,
        Field(
            description="adamw (lr {:g}, wd {:g}: ImageNet-1K) or sgd (lr {:g}, wd {:g}: Tiny).".format(
                *OPTIMIZERS["adamw"], *OPTIMIZERS["sgd"]
            )
        ),
        OPT,
    ] = "adamw"
    lr: Annotated[float | None, Field(gt=0, description="Peak learning rate (cosine decay)."), OPT] = None
    weight_decay: Annotated[float | None, Field(ge=0, description="Weight decay."), OPT] = None
    momentum: Annotated[float, Field(ge=0, lt=1, description="SGD momentum."), OPT] = 0.9
    warmup_epochs: Annotated[int, Field(ge=0, description="Linear warm-up epochs."), OPT] = 0
    targets: Annotated[
        Targets, Field(description="soft: the stored labels; hard: the images' own classes (baseline)."), OPT
    ] = "soft"
    temp_schedule: Annotated[ScheduleKind | None, Field(description="Teacher temperature schedule (DKR)."), TEMP] = None
    start_temp: Annotated[
        float | None, Field(gt=0, description=f"DKR: the teacher temperature at epoch 0 (default {DKR.start:g})."), TEMP
    ] = None
    floor_temp: Annotated[
        float | None, Field(gt=0, description=f"DKR: the lowest teacher temperature (default {DKR.floor:g})."), TEMP
    ] = None
    temp_factor: Annotated[
        float | None,
        Field(gt=0, le=1, description=f"DKR step schedule: multiply by this (default {DKR.factor:g})."),
        TEMP,
    ] = None
    temp_every: Annotated[
        int | None,
        Field(ge=1, description=f"DKR step period in epochs of a 300-epoch run (default {DKR.every})."),
        TEMP,
    ] = None
    calibrate: Annotated[
        bool | None,
        Field(description="Refit T_s every epoch (CA); default on for soft targets."),
        TEMP,
        Cli(flags=("--calibrate/--no-calibrate",)),
    ] = None
    student_temp: Annotated[
        float | Literal["follow"] | None,
        Field(
            description=f"T_s (start value with --calibrate; default the label file's, {CA.initial:g}), or follow: "
            "T_s = the epoch's teacher T (no calibration)."
        ),
        TEMP,
        Cli(metavar="FLOAT|follow", text=True),
    ] = None
    ca_fit: Annotated[
        CaFit,
        Field(
            description="What CA fits T_s on: first-batches (8 batches in eval mode after the epoch) or last-batch "
            "(the last step's training-mode output, as the authors' code)."
        ),
        TEMP,
    ] = "first-batches"
    ca_grid: Annotated[
        Annotated[Grid, BeforeValidator(_grid_text), AfterValidator(_grid_ok)] | None,
        Field(description=f"CA grid MIN:MAX:POINTS (default: the label file's, {grid_text(grid_of(CA))})."),
        TEMP,
        Cli(metavar="MIN:MAX:POINTS", text=True),
    ] = None
    t2_scaling: Annotated[bool, Field(description="Scale the loss by T^2."), TEMP, Cli(flags=("--t2-scaling",))] = False
    evals: Annotated[int, Field(ge=1, description="Test-split evaluations, evenly spread; the last epoch always.")] = 1
    seeds: Annotated[int, Field(ge=1, description="Students with seeds SEED, SEED+1, ...: mean and sd of top-1.")] = 1
    seed: Seed = 0
    workers: Workers = None
    stop_after: Annotated[
        int | None, Field(ge=1, description="Stop after N epochs in this session (--resume later).")
    ] = None
    resume: Resume = False
    tensorboard: Tensorboard = None
    wandb: Wandb = None
    device: Device = "auto"
    amp: Amp = "auto"

    @model_validator(mode="after")
    def _hard_targets_take_no_temperature(self) -> TrainConfig:
        if self.targets == "hard":
            given = [n for n in TEMPERATURE_OPTIONS if getattr(self, n) is not None]
            if given or self.calibrate or self.t2_scaling or self.student_temp is not None or self.ca_grid:
                raise ValueError("hard targets take no temperature options (they are the images' own classes)")
        if self.student_temp == "follow" and self.calibrate:
            raise ValueError("student-temp follow sets T_s every epoch: it cannot be calibrated too")
        if isinstance(self.student_temp, float) and self.student_temp <= 0:
            raise ValueError("student-temp must be > 0 or follow")
        return self

    def identity(self) -> dict[str, object]:
        """The settings a resumed run must share with the run it continues (not where or how it runs)."""
        return self.model_dump(mode="json", exclude=set(RUN_ONLY))

    def plan(self, calibration: TempSchedule | None, student: StudentTemp) -> TrainPlan:
        """Every default filled, once: the optimizer's, the teacher schedule and the student temperature of the
        label file's calibration (``calibration``, ``student``), else the method's."""
        soft = self.targets == "soft"
        base = (calibration or DKR) if soft else TempSchedule(kind="none", start=1.0, floor=1.0)
        calibrate = (
            soft and self.student_temp != "follow" and student.calibrate if self.calibrate is None else self.calibrate
        )
        schedule = TempSchedule(
            kind=self.temp_schedule or base.kind,
            start=self.start_temp or base.start,
            floor=self.floor_temp or base.floor,
            factor=self.temp_factor or base.factor,
            every=self.temp_every or base.every,
        )
        return TrainPlan(
            **self.model_dump(
                exclude={
                    "lr",
                    "weight_decay",
                    *TEMPERATURE_OPTIONS,
                    "calibrate",
                    "student_temp",
                    "ca_fit",
                    "ca_grid",
                    "seeds",
                }
            ),
            lr=self.lr if self.lr is not None else OPTIMIZERS[self.optimizer][0],
            weight_decay=self.weight_decay if self.weight_decay is not None else OPTIMIZERS[self.optimizer][1],
            schedule=schedule,
            student=StudentPlan(
                temp=student.initial if self.student_temp is None else self.student_temp,
                fit=self.ca_fit if calibrate else None,
                grid=self.ca_grid or grid_of(student),
            ),
        )


class StudentPlan(BaseModel):
    """The student temperature T_s of a run: where it starts (or follow: the epoch's teacher T), what Calibrated
    Alignment refits it on after each epoch (None: it stays), and CA's grid."""

    model_config = ConfigDict(frozen=True)

    temp: float | Literal["follow"]
    fit: CaFit | None
    grid: Grid


class TrainPlan(BaseModel):
    """A run as it trains: `TrainConfig` with every default filled and the temperatures as records."""

    model_config = ConfigDict(frozen=True)

    images: str
    labels: Path
    output: Path
    model: str
    input_size: int | None  # None: the teacher's, read from the label file
    eval_data: str | None  # None: the images' teacher's data (the stage fills it where it can read it)
    root: Path | None
    epochs: int
    optimizer: Optimizer
    lr: float
    weight_decay: float
    momentum: float
    warmup_epochs: int
    targets: Targets
    schedule: TempSchedule
    student: StudentPlan
    t2_scaling: bool
    evals: int
    seed: int
    workers: int | None
    stop_after: int | None
    resume: bool
    tensorboard: Path | None
    wandb: str | None
    device: str
    amp: Amp

    def identity(self) -> dict[str, object]:
        """What a resumed run must share with the run it continues: the plan, not where or how fast it runs."""
        return self.model_dump(mode="json", exclude=set(RUN_ONLY))
