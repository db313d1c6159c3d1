"""`lpq synth`: synthetic images per class."""

from __future__ import annotations

import typer
from rich.table import Table

from lpq.artifacts.run import rank0
from lpq.cli.common import command, funnel, print_json, show_progress, stdout
from lpq.cli.options import JsonOpt, QuietOpt
from lpq.configs.synth import SynthConfig


@funnel
@command(SynthConfig)
def synth(ctx: typer.Context, cfg: SynthConfig, quiet: QuietOpt = False, json_out: JsonOpt = False) -> None:
    """Turn noise into IPC images per class, matching the teacher's class BN statistics (class-wise batching).

    Example:

        lpq synth --teacher teacher.lpqt --ipc 10 --iterations 1000 -o syn/
    """
    from lpq.stages.synth import synthesize

    manifest = synthesize(cfg, show=show_progress(ctx, quiet))
    if not rank0():
        return
    if json_out:
        print_json(manifest)
        return
    t = Table(title=f"Synthesized {cfg.output}", show_header=False, title_justify="left")
    t.add_column(style="bold")
    t.add_column()
    t.add_row("complete", str(manifest.complete))
    t.add_row("groups done", str(len(manifest.groups)))
    t.add_row("teacher top-1 on images", f"{manifest.teacher_top1:.1f}%")
    t.add_row("within-class cosine", f"{manifest.within_class_cosine:.4f}")
    t.add_row("seconds", f"{sum(g.seconds for g in manifest.groups):.1f}")
    stdout().print(t)
