"""`lpq quantize`: top-k labels and fewer bits per value."""

from __future__ import annotations

import typer

from lpq.cli.common import command, funnel, print_json, stdout
from lpq.cli.options import JsonOpt, QuietOpt, choice_table, result_table
from lpq.configs.quantize import QuantizeConfig


@funnel
@command(QuantizeConfig)
def quantize(ctx: typer.Context, cfg: QuantizeConfig, quiet: QuietOpt = False, json_out: JsonOpt = False) -> None:
    """Re-store labels as MR-k / MS-k with coarser values; refuses what needs information already dropped.

    Example:

        lpq quantize labels.lpql --top-k 10 --scheme mr --values i8 -o q.lpql

    The smallest k that keeps 90% of the teacher's softmax mass where DKR spends its time (the middle of its
    schedule), chosen from the full logits; --at-temp 1 measures it at T=1:

        lpq quantize labels.lpql --top-k auto --keep-mass 0.9 -o q.lpql

    x100 of full 8-bit labels on labels pruned x10: the code and k that fit 1/10 of a full view each:

        lpq prune labels.lpql --ratio 10 -o p.lpql && lpq quantize p.lpql --budget x100 -o q.lpql

    The same budget in a code of your choice (its largest k, at the first pruning where it fits):

        lpq quantize labels.lpql --budget x100 --scheme mr -o q.lpql
    """
    from lpq.stages.quantize import quantize_file

    result = quantize_file(cfg)
    if json_out:
        print_json(result)
        return
    out = stdout()
    out.print(result_table("Quantize", result, hide=frozenset({"choice"})))
    if result.choice is not None:
        out.print(choice_table(result.choice))
