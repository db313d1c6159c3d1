"""`lpq export` and `lpq import`: labels to and from other tools' layouts (the SRe2L / LPLD / LPQLD code's)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from lpq.cli.common import funnel, make_config, print_json, show_progress, stdout, warn
from lpq.cli.options import ConfigOpt, JsonOpt, Layout, QuietOpt, Values, result_table


@funnel
def export(
    ctx: typer.Context,
    labels: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="The .lpql file to export.")],
    to: Annotated[
        Layout, typer.Option(help="The layout to write: sre2l (SRe2L, LPLD and LPQLD's code).")
    ] = Layout.sre2l,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Folder to write (must not exist).")] = None,
    images: Annotated[str | None, typer.Option(help="The image set, when its images differ in size.")] = None,
    config: ConfigOpt = None,
    quiet: QuietOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Write labels in another tool's layout (one torch.save list per batch and a JSON batch map for sre2l).

    Example:

        lpq export labels.lpql --to sre2l -o fkd_labels/
    """
    from lpq.interop.exchange import ExportConfig, export_labels

    result = export_labels(make_config(ctx, ExportConfig), show=show_progress(ctx, quiet))
    for line in result.notes:
        warn(line)
    print_json(result) if json_out else stdout().print(result_table("Export", result))


@funnel
def import_(
    ctx: typer.Context,
    folder: Annotated[Path, typer.Argument(exists=True, file_okay=False, help="A folder in another tool's layout.")],
    layout: Annotated[
        Layout, typer.Option("--from", help="Its layout: sre2l (SRe2L, LPLD and LPQLD's code).")
    ] = Layout.sre2l,
    images: Annotated[str | None, typer.Option(help="The image set the labels belong to (ImageFolder order).")] = None,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Label file to write.")] = None,
    values: Annotated[
        Values | None, typer.Option(help="Value encoding (default: their logits' own precision, f16 or f32).")
    ] = None,
    input_size: Annotated[
        int | None,
        typer.Option(
            min=1, help="Their crop size, which their CutMix boxes refer to (recorded by lpq export; else required)."
        ),
    ] = None,
    mean: Annotated[
        tuple[float, float, float] | None, typer.Option(help="The teacher's normalization mean (default ImageNet's).")
    ] = None,
    std: Annotated[tuple[float, float, float] | None, typer.Option(help="The teacher's normalization std.")] = None,
    epochs: Annotated[
        int | None, typer.Option(min=1, help="Relabel epochs their run planned (sets the pruning ratio).")
    ] = None,
    config: ConfigOpt = None,
    quiet: QuietOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Read labels from another tool's layout (torch.load with weights_only=True only) into a .lpql file.

    Example:

        lpq import fkd_labels/ --images syn/ -o labels.lpql
    """
    from lpq.interop.exchange import ImportConfig, import_labels

    result = import_labels(make_config(ctx, ImportConfig), show=show_progress(ctx, quiet))
    for line in result.notes:
        warn(line)
    print_json(result) if json_out else stdout().print(result_table("Import", result))
