"""`lpq prune`: keep a fraction of a label file's batches."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from lpq.cli.common import funnel, make_config, print_json, stdout, warn_uncovered
from lpq.cli.options import ConfigOpt, JsonOpt, QuietOpt, SeedOpt, Strategy, result_table


@funnel
def prune(
    ctx: typer.Context,
    labels: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="Input .lpql file (left untouched).")],
    ratio: Annotated[
        float | None, typer.Option(help="Keep round(total / ratio) batches; composes with earlier pruning.")
    ] = None,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Pruned file to write.")] = None,
    strategy: Annotated[
        Strategy, typer.Option(help="cover: whole epochs first, every image labelled; first; random.")
    ] = Strategy.cover,
    seed: SeedOpt = 0,
    config: ConfigOpt = None,
    quiet: QuietOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Keep 1/ratio of the stored batches (chunks copied unchanged) and record which.

    Example:

        lpq prune labels.lpql --ratio 40 -o small.lpql
    """
    from lpq.stages.prune import PruneConfig, prune_file

    result = prune_file(make_config(ctx, PruneConfig))
    warn_uncovered(result.coverage)
    print_json(result) if json_out else stdout().print(result_table("Prune", result))
