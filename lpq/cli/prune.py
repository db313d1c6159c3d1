"""`lpq prune`: keep a fraction of a label file's batches."""

from __future__ import annotations

import typer

from lpq.cli.common import command, funnel, print_json, stdout, warn_uncovered
from lpq.cli.options import JsonOpt, QuietOpt, result_table
from lpq.configs.prune import PruneConfig


@funnel
@command(PruneConfig)
def prune(ctx: typer.Context, cfg: PruneConfig, quiet: QuietOpt = False, json_out: JsonOpt = False) -> None:
    """Keep 1/ratio of the stored batches (chunks copied unchanged) and record which.

    Example:

        lpq prune labels.lpql --ratio 40 -o small.lpql
    """
    from lpq.stages.prune import prune_file

    result = prune_file(cfg)
    warn_uncovered(result.coverage)
    print_json(result) if json_out else stdout().print(result_table("Prune", result))
