"""`lpq squeeze`: teacher + per-class BatchNorm statistics."""

from __future__ import annotations

import typer

from lpq.artifacts.run import rank0
from lpq.cli.common import command, funnel, print_json, show_progress, stdout
from lpq.cli.options import JsonOpt, QuietOpt, result_table
from lpq.configs.squeeze import SqueezeConfig


@funnel
@command(SqueezeConfig)
def squeeze(ctx: typer.Context, cfg: SqueezeConfig, quiet: QuietOpt = False, json_out: JsonOpt = False) -> None:
    """Train (or load) a teacher on real data, report its test accuracy, and record per-class BN statistics.

    Example:

        lpq squeeze --data digits --model convnet --epochs 30 -o teacher.lpqt

    A pretrained ImageNet teacher (statistics pass and evaluation only, streamed):

        lpq squeeze --data /data/imagenet --weights torchvision:resnet18.IMAGENET1K_V1 -o teacher.lpqt

    The same teacher restricted to Tiny-ImageNet's 200 classes (its folders are ImageNet wnids):

        lpq squeeze --data /data/tiny-imagenet-200 --weights torchvision:resnet18.IMAGENET1K_V1 \
            --teacher-classes imagenet1k -o tiny-teacher.lpqt
    """
    from lpq.stages.squeeze import squeeze as run

    result = run(cfg, show=show_progress(ctx, quiet))
    if not rank0():
        return
    print_json(result) if json_out else stdout().print(result_table("Teacher", result))
