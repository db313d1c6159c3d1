"""`lpq demo`: the whole pipeline on the embedded digits set, ending in one comparison table."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from lpq.cli.common import funnel, make_config, print_json, show_progress, stdout
from lpq.cli.options import ConfigOpt, DataOpt, JsonOpt, QuietOpt, SeedOpt

BUDGET = "Budget (the defaults take about 65 s on a quiet 2-core CPU)"


@funnel
def demo(
    ctx: typer.Context,
    output: Annotated[Path, typer.Option("-o", "--output", help="Folder for everything the demo writes.")] = Path(
        "lpq-demo"
    ),
    data: DataOpt = "digits",
    model: Annotated[str, typer.Option(help="Teacher and student architecture.")] = "convnet",
    teacher_epochs: Annotated[int, typer.Option(min=1, rich_help_panel=BUDGET)] = 10,
    ipc: Annotated[int, typer.Option(min=1, rich_help_panel=BUDGET, help="Synthetic images per class.")] = 10,
    iterations: Annotated[int, typer.Option(min=1, rich_help_panel=BUDGET, help="Synthesis steps per class.")] = 200,
    label_epochs: Annotated[int, typer.Option(min=1, rich_help_panel=BUDGET, help="Relabel epochs.")] = 100,
    student_epochs: Annotated[int, typer.Option(min=1, rich_help_panel=BUDGET)] = 100,
    ratio: Annotated[float, typer.Option(min=1, help="Label pruning ratio of the compressed labels.")] = 10,
    top_k: Annotated[int, typer.Option(min=1, help="Classes kept per sample in the compressed labels.")] = 3,
    seed: SeedOpt = 0,
    config: ConfigOpt = None,
    quiet: QuietOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Run squeeze, synth, relabel, prune + quantize and two students, then compare full and compressed labels.

    Example:

        lpq demo -o lpq-demo
    """
    from lpq.demo import DemoConfig, run_demo

    result = run_demo(make_config(ctx, DemoConfig), show=show_progress(ctx, quiet))
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
