"""`lpq prune`: keep a fraction of a label file's batches."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from lpq.cli.common import funnel, print_json, stdout
from lpq.cli.options import JsonOpt, SeedOpt, Strategy, result_table


@funnel
def prune(
    labels: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="Input .lpql file (left untouched).")],
    ratio: Annotated[float, typer.Option(help="Keep round(total / ratio) batches; composes with earlier pruning.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Pruned file to write.")],
    strategy: Annotated[Strategy, typer.Option(help="Which batches to keep.")] = Strategy.random,
    seed: SeedOpt = 0,
    json_out: JsonOpt = False,
) -> None:
    """Keep 1/ratio of the stored batches (chunks copied unchanged) and record which.

    Example:

        lpq prune labels.lpql --ratio 40 -o small.lpql
    """
    from lpq.labels.prune import prune_file

    result = prune_file(labels, ratio, output, strategy.value, seed)  # type: ignore[arg-type]
    print_json(result) if json_out else stdout().print(result_table("Prune", result))
