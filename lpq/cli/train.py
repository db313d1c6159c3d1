"""`lpq train`: a student from distilled images and stored labels."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from lpq.artifacts.run import rank0
from lpq.cli.common import funnel, make_config, print_json, show_progress, stdout
from lpq.cli.options import (
    Amp,
    AmpOpt,
    CaFit,
    ConfigOpt,
    DeviceOpt,
    JsonOpt,
    Optimizer,
    QuietOpt,
    ResumeOpt,
    RootOpt,
    Schedule,
    SeedOpt,
    Targets,
    TensorboardOpt,
    WandbOpt,
    WorkersOpt,
    result_table,
)

if TYPE_CHECKING:
    from lpq.stages.train import SeedsResult

OPT = "Optimization"
TEMP = "Temperatures (defaults: the label file's calibration, else the authors')"


def _temperature_or_follow(value: str) -> float | str:
    if value == "follow":
        return value
    try:
        return float(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is neither a temperature nor follow") from None


@funnel
def train(
    ctx: typer.Context,
    images: Annotated[
        str | None, typer.Argument(help="The distilled image set (folder or --data name) the labels belong to.")
    ] = None,
    labels: Annotated[Path | None, typer.Argument(exists=True, dir_okay=False, help="A .lpql label file.")] = None,
    output: Annotated[Path, typer.Option("-o", "--output", help="Run folder.")] = Path("run"),
    model: Annotated[
        str, typer.Option(help="Student: convnet, any torchvision classifier (resnet18, ...) or timm:NAME.")
    ] = "convnet",
    input_size: Annotated[
        int | None,
        typer.Option(
            min=8,
            help="The student's side S in px: stored views are rendered and test images prepared at S "
            "(default: the teacher's input size).",
        ),
    ] = None,
    eval_data: Annotated[
        str | None,
        typer.Option(
            help="Real data whose test split is evaluated (default: the data the images' teacher was trained on)."
        ),
    ] = None,
    root: RootOpt = None,
    epochs: Annotated[int, typer.Option(min=1, rich_help_panel=OPT)] = 300,
    optimizer: Annotated[
        Optimizer, typer.Option(rich_help_panel=OPT, help="adamw (lr 1e-3, wd 0.01) or sgd (lr 0.2, wd 1e-4).")
    ] = Optimizer.adamw,
    lr: Annotated[float | None, typer.Option(rich_help_panel=OPT)] = None,
    weight_decay: Annotated[float | None, typer.Option(rich_help_panel=OPT)] = None,
    warmup_epochs: Annotated[int, typer.Option(min=0, rich_help_panel=OPT)] = 0,
    targets: Annotated[
        Targets,
        typer.Option(rich_help_panel=OPT, help="soft: the stored labels; hard: the images' own classes (baseline)."),
    ] = Targets.soft,
    temp_schedule: Annotated[
        Schedule | None, typer.Option(rich_help_panel=TEMP, help="Teacher temperature schedule (DKR).")
    ] = None,
    start_temp: Annotated[
        float | None, typer.Option(rich_help_panel=TEMP, help="DKR: the teacher temperature at epoch 0 (default 20).")
    ] = None,
    floor_temp: Annotated[
        float | None, typer.Option(rich_help_panel=TEMP, help="DKR: the lowest teacher temperature (default 2).")
    ] = None,
    temp_factor: Annotated[float | None, typer.Option(rich_help_panel=TEMP)] = None,
    temp_every: Annotated[
        int | None, typer.Option(rich_help_panel=TEMP, help="Step period in epochs of a 300-epoch run.")
    ] = None,
    calibrate: Annotated[
        bool | None,
        typer.Option(
            "--calibrate/--no-calibrate",
            rich_help_panel=TEMP,
            help="Refit T_s every epoch (CA); default on for soft targets.",
        ),
    ] = None,
    student_temp: Annotated[
        float | None,
        typer.Option(
            parser=_temperature_or_follow,
            metavar="FLOAT|follow",
            rich_help_panel=TEMP,
            help="T_s (start value with --calibrate; default the label file's, 1), or follow: T_s = the epoch's "
            "teacher T (no calibration).",
        ),
    ] = None,
    ca_fit: Annotated[
        CaFit,
        typer.Option(
            rich_help_panel=TEMP,
            help="What CA fits T_s on: first-batches (8 batches in eval mode after the epoch) or last-batch "
            "(the last step's training-mode output, as the authors' code).",
        ),
    ] = CaFit.first_batches,
    ca_grid: Annotated[
        str | None,
        typer.Option(rich_help_panel=TEMP, help="CA grid MIN:MAX:POINTS (default: the label file's, 0.01:1:100)."),
    ] = None,
    t2_scaling: Annotated[
        bool, typer.Option("--t2-scaling", rich_help_panel=TEMP, help="Scale the loss by T^2.")
    ] = False,
    evals: Annotated[
        int, typer.Option(min=1, help="Test-split evaluations, evenly spread; the last epoch always.")
    ] = 1,
    seeds: Annotated[int, typer.Option(min=1, help="Students with seeds SEED, SEED+1, ...: mean and sd of top-1.")] = 1,
    workers: WorkersOpt = None,
    stop_after: Annotated[
        int | None, typer.Option(min=1, help="Stop after N epochs in this session (--resume later).")
    ] = None,
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
    """Train a student on the images with the stored soft labels (DKR + CA) and evaluate it on real data.

    Example:

        lpq train syn/ labels.lpql --model convnet --eval-data digits --epochs 100 -o run/

    Repeat a run from the settings it recorded: lpq train --config run/config.json -o run2/

    There is no batch-size option: every step replays one stored batch, so the batch size is the one the
    labels were made with (lpq relabel --batch-size; lpq inspect shows it).
    """
    from lpq.stages.train import TrainConfig, train_seeds
    from lpq.stages.train import train as run

    cfg = make_config(ctx, TrainConfig)
    if cfg.seeds == 1:
        result = run(cfg, show=show_progress(ctx, quiet))
        if rank0():
            print_json(result) if json_out else stdout().print(result_table("Student", result))
        return
    many = train_seeds(cfg, show=show_progress(ctx, quiet))
    if rank0():
        print_json(many) if json_out else stdout().print(seeds_table(many))


def seeds_table(result: SeedsResult) -> Table:
    t = Table(
        title=f"Students over seeds {result.seeds} (final epoch): top-1 {result.top1_mean:.2f} +- "
        f"{result.top1_sd:.2f}%, top-5 {result.top5_mean:.2f} +- {result.top5_sd:.2f}%",
        title_justify="left",
    )
    for col in ("seed", "top-1", "top-5", "train s", "eval s", "T_s on grid edge", "run"):
        t.add_column(col, justify="left" if col == "run" else "right")
    for r in result.runs:
        t.add_row(
            str(r.seed),
            f"{r.top1:.2f}%",
            f"{r.top5:.2f}%",
            f"{r.train_seconds:.0f}",
            f"{r.eval_seconds:.0f}",
            "-" if r.ca_edge_share is None else f"{100 * r.ca_edge_share:.0f}% of epochs",
            str(r.output),
        )
    return t
