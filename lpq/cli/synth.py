"""`lpq synth`: synthetic images per class."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from lpq.artifacts.run import rank0
from lpq.cli.common import funnel, make_config, print_json, show_progress, stdout
from lpq.cli.options import (
    Amp,
    AmpOpt,
    Batching,
    ConfigOpt,
    DeviceOpt,
    Init,
    JsonOpt,
    QuietOpt,
    ResumeOpt,
    SeedOpt,
    TeacherOpt,
    TensorboardOpt,
    WandbOpt,
)

OPT = "Optimization (defaults: the authors' values for the input size)"


@funnel
def synth(
    ctx: typer.Context,
    teacher: TeacherOpt = None,
    output: Annotated[
        Path, typer.Option("-o", "--output", help="Folder for the image set (ImageFolder of PNGs).")
    ] = Path("syn"),
    ipc: Annotated[int, typer.Option(help="Images per class.")] = 10,
    iterations: Annotated[
        int, typer.Option(min=0, rich_help_panel=OPT, help="Steps per class (authors: 4000).")
    ] = 1000,
    init: Annotated[
        Init,
        typer.Option(
            rich_help_panel=OPT,
            help="noise, or real: random real images of the class (with --iterations 0: the random-real baseline).",
        ),
    ] = Init.noise,
    data: Annotated[
        str | None, typer.Option(rich_help_panel=OPT, help="Real images for --init real (default: the teacher's data).")
    ] = None,
    lr: Annotated[
        float | None, typer.Option(rich_help_panel=OPT, help="Adam lr (0.25 at 224 px, 0.1 at <= 64 px).")
    ] = None,
    r_bn: Annotated[
        float | None, typer.Option(rich_help_panel=OPT, help="BN loss weight (0.01 at 224 px, 0.05 at <= 64 px).")
    ] = None,
    jitter: Annotated[
        int | None, typer.Option(rich_help_panel=OPT, help="Max random roll in pixels (input/8).")
    ] = None,
    batching: Annotated[
        Batching, typer.Option(rich_help_panel=OPT, help="classwise (LPQLD) or mixed (SRe2L baseline).")
    ] = Batching.classwise,
    classes: Annotated[str | None, typer.Option(help="Only classes START:STOP (half-open).")] = None,
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
    """Turn noise into IPC images per class, matching the teacher's class BN statistics (class-wise batching).

    Example:

        lpq synth --teacher teacher.lpqt --ipc 10 --iterations 1000 -o syn/
    """
    from lpq.stages.synth import SynthConfig, synthesize

    manifest = synthesize(make_config(ctx, SynthConfig), show=show_progress(ctx, quiet))
    if not rank0():
        return
    if json_out:
        print_json(manifest)
        return
    t = Table(title=f"Synthesized {output}", show_header=False, title_justify="left")
    t.add_column(style="bold")
    t.add_column()
    t.add_row("complete", str(manifest.complete))
    t.add_row("groups done", str(len(manifest.groups)))
    t.add_row("teacher top-1 on images", f"{manifest.teacher_top1:.1f}%")
    t.add_row("within-class cosine", f"{manifest.within_class_cosine:.4f}")
    t.add_row("seconds", f"{sum(g.seconds for g in manifest.groups):.1f}")
    stdout().print(t)
