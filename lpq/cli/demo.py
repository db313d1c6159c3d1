"""`lpq demo`: the whole pipeline on the embedded digits set, ending in one comparison table."""

from __future__ import annotations

import typer
from rich.table import Table

from lpq.cli.common import command, funnel, print_json, show_progress, stdout
from lpq.cli.options import JsonOpt, QuietOpt
from lpq.configs.demo import DemoConfig

BUDGET = "Budget (the defaults take about 65 s on a quiet 2-core CPU)"


@funnel
@command(DemoConfig)
def demo(ctx: typer.Context, cfg: DemoConfig, quiet: QuietOpt = False, json_out: JsonOpt = False) -> None:
    """Run squeeze, synth, relabel, prune + quantize and two students, then compare full and compressed labels.

    Example:

        lpq demo -o lpq-demo
    """
    from lpq.demo import run_demo

    result = run_demo(cfg, show=show_progress(ctx, quiet))
    if json_out:
        print_json(result)
        return
    out = stdout()
    out.print(
        f"teacher top-1 {result.teacher_top1:.1f}%; synthetic images: teacher top-1 {result.synth_teacher_top1:.1f}%, "
        f"within-class cosine {result.within_class_cosine:.3f}"
    )
    t = Table(title="Students on the same distilled images", title_justify="left")
    for col in ("labels", "student top-1", "top-5", "label bytes", "bytes/image", "vs float16 full", "file"):
        t.add_column(col, justify="right" if col not in ("labels", "file") else "left")
    for r in result.rows:
        t.add_row(
            r.labels,
            f"{r.top1:.1f}%",
            f"{r.top5:.1f}%",
            f"{r.label_bytes:,} B",
            f"{r.bytes_per_image:.1f} B",
            f"x{r.compression:.1f}",
            str(r.path),
        )
    out.print(t)
    paths = Table(title="Written", show_header=False, title_justify="left")
    for k, v in result.paths.items():
        paths.add_row(k.replace("_", " "), str(v))
    out.print(paths)
