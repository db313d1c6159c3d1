"""`lpq squeeze`: teacher + per-class BatchNorm statistics."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from lpq.artifacts.run import rank0
from lpq.cli.common import funnel, make_config, print_json, show_progress, stdout
from lpq.cli.options import (
    Amp,
    AmpOpt,
    ConfigOpt,
    DataOpt,
    DeviceOpt,
    DownloadOpt,
    JsonOpt,
    Optimizer,
    QuietOpt,
    ResumeOpt,
    RootOpt,
    SeedOpt,
    TeacherClassesOpt,
    TensorboardOpt,
    WandbOpt,
    WorkersOpt,
    result_table,
)

TRAIN = "Teacher training"


@funnel
def squeeze(
    ctx: typer.Context,
    output: Annotated[Path, typer.Option("-o", "--output", help="Teacher file to write (.lpqt).")] = Path(
        "teacher.lpqt"
    ),
    data: DataOpt = "digits",
    root: RootOpt = None,
    download: DownloadOpt = False,
    model: Annotated[
        str | None,
        typer.Option(
            help="convnet, any torchvision classifier (resnet18, ...) or timm:NAME; "
            "default: the weights' architecture, else convnet."
        ),
    ] = None,
    weights: Annotated[
        str | None,
        typer.Option(
            help="A weight file (safetensors or weights-only .pt), torchvision:resnet18.IMAGENET1K_V1, "
            "or timm:NAME.TAG."
        ),
    ] = None,
    teacher_classes: TeacherClassesOpt = None,
    image_size: Annotated[
        int | None,
        typer.Option(min=8, help="Input size S (default: native for images of <= 64 px, 224 for larger ones)."),
    ] = None,
    epochs: Annotated[
        int | None, typer.Option(min=0, rich_help_panel=TRAIN, help="Training epochs (default 30; 0 with --weights).")
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1, rich_help_panel=TRAIN)] = 128,
    optimizer: Annotated[Optimizer, typer.Option(rich_help_panel=TRAIN, help="sgd or adamw.")] = Optimizer.sgd,
    lr: Annotated[float, typer.Option(rich_help_panel=TRAIN, help="Peak learning rate (one-cycle cosine).")] = 0.05,
    weight_decay: Annotated[float, typer.Option(rich_help_panel=TRAIN)] = 5e-4,
    stats_per_class: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Class statistics from N seeded random training images of each class (default: all of them); "
            "bounds the statistics pass on large sets.",
        ),
    ] = None,
    workers: WorkersOpt = None,
    skip_bad_images: Annotated[
        bool, typer.Option("--skip-bad-images", help="Skip and count unreadable image files instead of stopping.")
    ] = False,
    seed: SeedOpt = 0,
    resume: ResumeOpt = False,
    tensorboard: TensorboardOpt = None,
    wandb: WandbOpt = None,
    device: DeviceOpt = "auto",
    amp: AmpOpt = Amp.auto,
    config: ConfigOpt = None,
    quiet: QuietOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Train (or load) a teacher on real data, report its test accuracy, and record per-class BN statistics.

    Example:

        lpq squeeze --data digits --model convnet --epochs 30 -o teacher.lpqt

    A pretrained ImageNet teacher (statistics pass and evaluation only, streamed):

        lpq squeeze --data /data/imagenet --weights torchvision:resnet18.IMAGENET1K_V1 -o teacher.lpqt

    The same teacher restricted to Tiny-ImageNet's 200 classes (its folders are ImageNet wnids):

        lpq squeeze --data /data/tiny-imagenet-200 --weights torchvision:resnet18.IMAGENET1K_V1 \
            --teacher-classes imagenet1k -o tiny-teacher.lpqt
    """
    from lpq.stages.squeeze import SqueezeConfig
    from lpq.stages.squeeze import squeeze as run

    result = run(make_config(ctx, SqueezeConfig), show=show_progress(ctx, quiet))
    if not rank0():
        return
    print_json(result) if json_out else stdout().print(result_table("Teacher", result))
