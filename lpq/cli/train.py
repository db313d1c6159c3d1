"""`lpq train`: a student from distilled images and stored labels."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer
from rich.table import Table

from lpq.artifacts.run import rank0
from lpq.cli.common import command, funnel, print_json, show_progress, stdout
from lpq.cli.options import JsonOpt, QuietOpt, result_table
from lpq.configs.train import TrainConfig

if TYPE_CHECKING:
    from lpq.stages.train import SeedsResult


@funnel
@command(TrainConfig)
def train(ctx: typer.Context, cfg: TrainConfig, quiet: QuietOpt = False, json_out: JsonOpt = False) -> None:
    """Train a student on the images with the stored soft labels (DKR + CA) and evaluate it on real data.

    Example:

        lpq train syn/ labels.lpql --model convnet --eval-data digits --epochs 100 -o run/

    Repeat a run from the settings it recorded: lpq train --config run/config.json -o run2/

    There is no batch-size option: every step replays one stored batch, so the batch size is the one the
    labels were made with (lpq relabel --batch-size; lpq inspect shows it).
    """
    from lpq.stages.train import train as run
    from lpq.stages.train import train_seeds

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
