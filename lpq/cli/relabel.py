"""`lpq relabel`: soft labels of augmented batches into a `.lpql` file."""

from __future__ import annotations

import typer

from lpq.artifacts.run import rank0
from lpq.cli.common import command, funnel, print_json, show_progress, stdout, warn_uncovered
from lpq.cli.options import JsonOpt, QuietOpt, choice_table, result_table
from lpq.configs.relabel import RelabelConfig


@funnel
@command(RelabelConfig)
def relabel(ctx: typer.Context, cfg: RelabelConfig, quiet: QuietOpt = False, json_out: JsonOpt = False) -> None:
    """Label every kept augmented batch with the teacher and stream the labels into a .lpql file.

    Example:

        lpq relabel syn/ --teacher teacher.lpqt --epochs 300 --batch-size 64 --ratio 10 --top-k 10 -o labels.lpql

    x100 of full 8-bit labels, the code and k chosen on the teacher's logits of a sample of the kept batches:

        lpq relabel syn/ --teacher teacher.lpqt --epochs 300 --ratio 10 --budget x100 -o labels.lpql
    """
    from lpq.stages.relabel import relabel as run

    result = run(cfg, show=show_progress(ctx, quiet))
    if rank0():
        warn_uncovered(result.coverage)
        if json_out:
            print_json(result)
            return
        stdout().print(result_table("Relabel", result, hide=frozenset({"choice"})))
        if result.choice is not None:
            stdout().print(choice_table(result.choice))
