"""The label-making and training commands as functions, for a script of your own.

Each takes the command's options as keyword arguments (the option names with ``_`` for ``-``: ``epochs``,
``batch_size``, ``ratio``, ``top_k``, ``values``, ...), builds the same config the command builds and calls the
same driver, so a Python caller gets exactly what ``lpq relabel`` / ``lpq train`` do, results as pydantic models.
``relabel`` also takes a teacher that is any ``nn.Module`` (a custom architecture has no name on the command
line): say how its inputs are prepared with an ``InputSpec``.

    import lpq, torchvision
    net = torchvision.models.resnet18(num_classes=10)                      # your trained teacher
    spec = lpq.InputSpec(size=32, mean=(0.49, 0.48, 0.45), std=(0.25, 0.24, 0.26))
    lpq.relabel("syn/", net, "labels.lpql", input_spec=spec, epochs=300, ratio=10, top_k=2, values="i8")
    print(lpq.train("syn/", "labels.lpql", "run/", epochs=300, eval_data="cifar10").top1)
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from lpq.errors import LpqError

if TYPE_CHECKING:
    from torch import nn

    from lpq.data import InputSpec
    from lpq.progress import Show
    from lpq.stages.relabel import RelabelResult
    from lpq.stages.train import SeedsResult, TrainResult


def relabel(
    images: str | Path,
    teacher: nn.Module | str | Path,
    output: str | Path,
    *,
    input_spec: InputSpec | None = None,
    show: bool | Show = False,
    **options: Any,
) -> RelabelResult:
    """Label ``images`` (a distilled folder or a ``--data`` name) with ``teacher`` into the `.lpql` file ``output``.

    ``teacher``: a teacher file from `lpq squeeze`, pretrained weights (``torchvision:resnet18.IMAGENET1K_V1``),
    or a model of your own in eval mode whose output rows are the images' classes, in their order; a model needs
    ``input_spec`` (its input size and normalization). ``options``: `lpq relabel`'s (RelabelConfig's fields).
    """
    from torch import nn

    from lpq.configs.relabel import RelabelConfig
    from lpq.stages.relabel import relabel as run

    if not isinstance(teacher, nn.Module):
        return run(RelabelConfig(images=str(images), teacher=teacher, output=Path(output), **options), show)
    if input_spec is None:
        raise LpqError(
            "teacher-no-input-spec",
            "a teacher model needs input_spec: the input size and normalization it was trained with",
            "pass input_spec=lpq.InputSpec(size=..., mean=..., std=...)",
        )
    from lpq.artifacts.teacher import module_teacher
    from lpq.data import open_images

    own = module_teacher(teacher, open_images(str(images)).classes, input_spec)
    return run(RelabelConfig(images=str(images), output=Path(output), **options), show, own)


def train(
    images: str | Path, labels: str | Path, output: str | Path = "run", *, show: bool | Show = False, **options: Any
) -> TrainResult | SeedsResult:
    """Train students on ``images`` and their ``labels`` into the run folder ``output``, evaluated at the final
    epoch; ``options``: `lpq train`'s (TrainConfig's fields). One seed gives its `TrainResult`; ``seeds=N`` trains
    N students into OUTPUT/seed-<s>/ and gives their `SeedsResult` (mean and sd)."""
    from lpq.configs.train import TrainConfig
    from lpq.stages.train import train as run
    from lpq.stages.train import train_seeds

    cfg = TrainConfig(images=str(images), labels=Path(labels), output=Path(output), **options)
    return run(cfg, show) if cfg.seeds == 1 else train_seeds(cfg, show)
