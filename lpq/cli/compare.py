"""`lpq compare`: students side by side from their run folders."""

from __future__ import annotations

import typer
from rich.table import Table

from lpq.cli.common import command, funnel, print_json, stdout
from lpq.cli.options import JsonOpt, QuietOpt
from lpq.configs.compare import CompareConfig


@funnel
@command(CompareConfig)
def compare(ctx: typer.Context, cfg: CompareConfig, quiet: QuietOpt = False, json_out: JsonOpt = False) -> None:
    """Label bytes, compression and top-1 mean +- sd of students, one row per run folder; and DD-Ranking's IOR
    (top-1 over a random real subset with the same labels and recipe) and HLR (hard-label top-1 on the full real
    data minus on the images) where those baselines' runs are among the folders.

    Example:

        lpq compare demo/run-full demo/run-compressed --plot accuracy.png
    """
    from lpq.stages.compare import compare as run

    result = run(cfg)
    if json_out:
        print_json(result)
        return
    ranked = any(r.ior is not None or r.hlr is not None for r in result.rows)
    t = Table(title="Students", title_justify="left")
    columns = ["run", "images", "label bytes", "vs float16 full", "seeds", "top-1 (mean +- sd)"]
    for col in [*columns, *(["IOR", "HLR"] if ranked else []), "labels"]:
        t.add_column(col, justify="left" if col in ("run", "images", "labels") else "right")
    for r in result.rows:
        dd = ["-" if v is None else f"{v:+.2f} pts" for v in (r.ior, r.hlr)] if ranked else []
        t.add_row(
            str(r.run),
            f"{r.images}, {r.targets}",
            f"{r.label_bytes:,} B",
            "-" if r.compression is None else f"x{r.compression:.1f}",
            str(r.seeds),
            f"{r.top1_mean:.2f} +- {r.top1_sd:.2f} %" if r.seeds > 1 else f"{r.top1_mean:.2f} % (1 seed)",
            *dd,
            str(r.labels),
        )
    out = stdout()
    out.print(t)
    if result.plot is not None:
        out.print(f"plot: {result.plot}")
