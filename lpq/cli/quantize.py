"""`lpq quantize`: top-k labels and fewer bits per value."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from lpq.cli.common import funnel, make_config, print_json, stdout
from lpq.cli.options import (
    BudgetOpt,
    ConfigOpt,
    JsonOpt,
    QuietOpt,
    SampleTempOpt,
    Scheme,
    TailOpt,
    TopKOpt,
    Values,
    choice_table,
    result_table,
)
from lpq.format.header import MS_TEMPERATURE, SAMPLE_TEMPERATURE, TAIL_POINTS


@funnel
def quantize(
    ctx: typer.Context,
    labels: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="Input .lpql file (left untouched).")],
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Quantized file to write.")] = None,
    top_k: TopKOpt = None,
    keep_mass: Annotated[float, typer.Option(help="With --top-k auto: the mean softmax mass to keep.")] = 0.9,
    at_temp: Annotated[
        float | None,
        typer.Option(
            help="With --top-k auto: the temperature the mass is measured at (default: the middle epoch's of the "
            "labels' DKR schedule, 3.361 for the authors', where half of a run is at it or hotter).",
        ),
    ] = None,
    scheme: Annotated[
        Scheme,
        typer.Option(
            help="mr (top-k logits, re-normalized in training), ms (top-k probabilities), tail (top-k logits and "
            "the rest's curve: the mass outside them right at every temperature), sampled (k classes drawn from "
            "the teacher's softmax, importance-weighted at every temperature) or none."
        ),
    ] = Scheme.mr,
    tail_points: TailOpt = TAIL_POINTS,
    sample_temp: SampleTempOpt = SAMPLE_TEMPERATURE,
    values: Annotated[Values, typer.Option(help="Value encoding.")] = Values.i8,
    ms_temp: Annotated[float, typer.Option(help="Softmax temperature of MS probabilities.")] = MS_TEMPERATURE,
    budget: BudgetOpt = None,
    config: ConfigOpt = None,
    quiet: QuietOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Re-store labels as MR-k / MS-k with coarser values; refuses what needs information already dropped.

    Example:

        lpq quantize labels.lpql --top-k 10 --scheme mr --values i8 -o q.lpql

    The smallest k that keeps 90% of the teacher's softmax mass where DKR spends its time (the middle of its
    schedule), chosen from the full logits; --at-temp 1 measures it at T=1:

        lpq quantize labels.lpql --top-k auto --keep-mass 0.9 -o q.lpql

    x100 of full 8-bit labels on labels pruned x10: the code and k that fit 1/10 of a full view each:

        lpq prune labels.lpql --ratio 10 -o p.lpql && lpq quantize p.lpql --budget x100 -o q.lpql
    """
    from lpq.stages.quantize import QuantizeConfig, quantize_file

    result = quantize_file(make_config(ctx, QuantizeConfig))
    if json_out:
        print_json(result)
        return
    out = stdout()
    out.print(result_table("Quantize", result, hide=frozenset({"choice"})))
    if result.choice is not None:
        out.print(choice_table(result.choice))
