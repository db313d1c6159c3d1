"""`lpq squeeze`'s settings."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, Field

from lpq.choices import Optimizer
from lpq.configs import Amp, Cli, Data, Device, Resume, Root, Seed, TeacherClasses, Tensorboard, Wandb, Workers

TRAIN = Cli(panel="Teacher training")
EPOCHS = 30  # a teacher trained here; one from --weights trains none


class SqueezeConfig(BaseModel):
    output: Annotated[Path, Field(description="Teacher file to write (.lpqt)."), Cli(flags=("-o", "--output"))] = Path(
        "teacher.lpqt"
    )
    data: Data = "digits"
    root: Root = None
    download: Annotated[
        bool, Field(description="Download cifar10/cifar100 if missing (needs internet)."), Cli(flags=("--download",))
    ] = False
    model: Annotated[
        str | None,
        Field(
            description="convnet, any torchvision classifier (resnet18, ...) or timm:NAME; default: the weights' "
            "architecture, else convnet."
        ),
    ] = None
    weights: Annotated[
        str | None,
        Field(
            description="A weight file (safetensors or weights-only .pt), torchvision:resnet18.IMAGENET1K_V1, or "
            "timm:NAME.TAG."
        ),
    ] = None
    teacher_classes: TeacherClasses = None
    image_size: Annotated[
        int | None,
        Field(ge=8, description="Input size S (default: native for images of <= 64 px, 224 for larger ones)."),
    ] = None
    epochs: Annotated[
        int | None, Field(ge=0, description=f"Training epochs (default {EPOCHS}; 0 with --weights)."), TRAIN
    ] = None
    batch_size: Annotated[int, Field(ge=1, description="Training batch size."), TRAIN] = 128
    optimizer: Annotated[Optimizer, Field(description="sgd or adamw."), TRAIN] = "sgd"
    lr: Annotated[
        float, Field(gt=0, description="Peak learning rate (one-cycle cosine; AdamW takes about 1e-3)."), TRAIN
    ] = 0.05
    weight_decay: Annotated[float, Field(ge=0, description="Weight decay."), TRAIN] = 5e-4
    stats_per_class: Annotated[
        int | None,
        Field(
            ge=1,
            description="Class statistics from N seeded random training images of each class (default: all of "
            "them); bounds the statistics pass on large sets.",
        ),
    ] = None
    workers: Workers = None
    skip_bad_images: Annotated[
        bool,
        Field(description="Skip and count unreadable image files instead of stopping."),
        Cli(flags=("--skip-bad-images",)),
    ] = False
    seed: Seed = 0
    resume: Annotated[
        Resume, Field(description="Continue from the per-epoch checkpoint beside the output, if any.")
    ] = False
    tensorboard: Tensorboard = None
    wandb: Wandb = None
    device: Device = "auto"
    amp: Amp = "auto"

    def identity(self) -> dict[str, object]:
        """The settings a checkpoint must have been made with to be resumed (not where or how fast it runs)."""
        run_only = {"output", "resume", "workers", "device", "skip_bad_images", "tensorboard", "wandb"}
        return self.model_dump(mode="json", exclude=run_only)
