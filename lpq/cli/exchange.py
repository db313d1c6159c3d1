"""`lpq export` and `lpq import`: labels to and from other tools' layouts (the SRe2L / LPLD / LPQLD code's)."""

from __future__ import annotations

import typer

from lpq.cli.common import command, funnel, print_json, show_progress, stdout, warn
from lpq.cli.options import JsonOpt, QuietOpt, result_table
from lpq.configs.exchange import ExportConfig, ImportConfig


@funnel
@command(ExportConfig)
def export(ctx: typer.Context, cfg: ExportConfig, quiet: QuietOpt = False, json_out: JsonOpt = False) -> None:
    """Write labels in another tool's layout (one torch.save list per batch and a JSON batch map for sre2l).

    Example:

        lpq export labels.lpql --to sre2l -o fkd_labels/
    """
    from lpq.interop.exchange import export_labels

    result = export_labels(cfg, show=show_progress(ctx, quiet))
    for line in result.notes:
        warn(line)
    print_json(result) if json_out else stdout().print(result_table("Export", result))


@funnel
@command(ImportConfig)
def import_(ctx: typer.Context, cfg: ImportConfig, quiet: QuietOpt = False, json_out: JsonOpt = False) -> None:
    """Read labels from another tool's layout (torch.load with weights_only=True only) into a .lpql file.

    Example:

        lpq import fkd_labels/ --images syn/ -o labels.lpql
    """
    from lpq.interop.exchange import import_labels

    result = import_labels(cfg, show=show_progress(ctx, quiet))
    for line in result.notes:
        warn(line)
    print_json(result) if json_out else stdout().print(result_table("Import", result))
