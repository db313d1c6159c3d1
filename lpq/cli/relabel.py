"""`lpq relabel`: soft labels of augmented batches into a `.lpql` file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from lpq.artifacts.run import rank0
from lpq.cli.common import (
    funnel,
    make_config,
    print_json,
    show_progress,
    stdout,
    warn_uncovered,
)
from lpq.cli.options import (
    Amp,
    AmpOpt,
    BudgetOpt,
    ConfigOpt,
    DeviceOpt,
    JsonOpt,
    Mix,
    QuietOpt,
    ResumeOpt,
    SampleTempOpt,
    Scheme,
    SeedOpt,
    Strategy,
    TailOpt,
    TeacherClassesOpt,
    TeacherOpt,
    TopKOpt,
    Values,
    WorkersOpt,
    choice_table,
    result_table,
)
from lpq.format.header import SAMPLE_TEMPERATURE, TAIL_POINTS

AUG = "Augmentation"
COMPACT = "Pruning and quantization"


@funnel
def relabel(
    ctx: typer.Context,
    images: Annotated[
        str | None, typer.Argument(help="Image set: a folder of class folders (lpq synth output) or a --data name.")
    ] = None,
    teacher: TeacherOpt = None,
    teacher_classes: TeacherClassesOpt = None,
    output: Annotated[Path, typer.Option("-o", "--output", help="Label file to write.")] = Path("labels.lpql"),
    epochs: Annotated[
        int, typer.Option(min=1, help="Epochs of augmented batches (authors: 300 on ImageNet-1K).")
    ] = 300,
    batch_size: Annotated[
        int, typer.Option(min=1, max=65535, help="Batch size (authors: 128 ImageNet-1K, 64 Tiny).")
    ] = 64,
    ratio: Annotated[
        float, typer.Option(min=1, rich_help_panel=COMPACT, help="Label only 1/ratio of the batches.")
    ] = 1.0,
    strategy: Annotated[
        Strategy,
        typer.Option(
            rich_help_panel=COMPACT,
            help="Which batches --ratio keeps: cover (whole epochs first, every image labelled), first, random.",
        ),
    ] = Strategy.cover,
    top_k: TopKOpt = None,
    scheme: Annotated[
        Scheme,
        typer.Option(
            rich_help_panel=COMPACT,
            help="none, mr (top-k logits), ms (top-k probabilities), tail (top-k logits and the rest's curve) or "
            "sampled (k classes drawn from the teacher's softmax, with their logits).",
        ),
    ] = Scheme.none,
    tail_points: TailOpt = TAIL_POINTS,
    sample_temp: SampleTempOpt = SAMPLE_TEMPERATURE,
    values: Annotated[Values, typer.Option(rich_help_panel=COMPACT, help="Value encoding.")] = Values.f16,
    budget: BudgetOpt = None,
    crop_scale: Annotated[
        tuple[float, float], typer.Option(rich_help_panel=AUG, help="RandomResizedCrop area range.")
    ] = (0.08, 1.0),
    flip_p: Annotated[float, typer.Option(rich_help_panel=AUG, help="Horizontal flip probability.")] = 0.5,
    mix: Annotated[Mix, typer.Option(rich_help_panel=AUG, help="Batch mixing.")] = Mix.cutmix,
    mix_alpha: Annotated[float, typer.Option(rich_help_panel=AUG, help="Beta(alpha, alpha) mixing weight.")] = 1.0,
    seed: SeedOpt = 0,
    workers: WorkersOpt = None,
    resume: ResumeOpt = False,
    device: DeviceOpt = "auto",
    amp: AmpOpt = Amp.auto,
    config: ConfigOpt = None,
    quiet: QuietOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Label every kept augmented batch with the teacher and stream the labels into a .lpql file.

    Example:

        lpq relabel syn/ --teacher teacher.lpqt --epochs 300 --batch-size 64 --ratio 10 --top-k 10 -o labels.lpql

    x100 of full 8-bit labels, the code and k chosen on the teacher's logits of a sample of the kept batches:

        lpq relabel syn/ --teacher teacher.lpqt --epochs 300 --ratio 10 --budget x100 -o labels.lpql
    """
    from lpq.stages.relabel import RelabelConfig
    from lpq.stages.relabel import relabel as run

    result = run(make_config(ctx, RelabelConfig), show=show_progress(ctx, quiet))
    if rank0():
        warn_uncovered(result.coverage)
        if json_out:
            print_json(result)
            return
        stdout().print(result_table("Relabel", result, hide=frozenset({"choice"})))
        if result.choice is not None:
            stdout().print(choice_table(result.choice))
