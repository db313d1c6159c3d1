"""The whole LPQLD pipeline in one call, for `lpq demo`: squeeze, synth, relabel, prune + quantize, train x2.

It compares a student trained with full labels against one trained with pruned, quantized labels on the
same distilled images, and says what each label file costs. Each stage is the library function its CLI
subcommand calls; this module only chains them and collects their results.

    lpq demo -o lpq-demo/        # digits, about 65 s on a quiet 2-core machine (benchmarks/threads.py)
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field

from lpq.configs.demo import DemoConfig
from lpq.configs.prune import PruneConfig
from lpq.configs.quantize import QuantizeConfig
from lpq.configs.relabel import RelabelConfig
from lpq.configs.squeeze import SqueezeConfig
from lpq.configs.synth import SynthConfig
from lpq.configs.train import TrainConfig
from lpq.errors import LpqError
from lpq.format.summary import summarize
from lpq.progress import Show
from lpq.stages.prune import prune_file
from lpq.stages.quantize import quantize_file
from lpq.stages.relabel import relabel
from lpq.stages.squeeze import squeeze
from lpq.stages.synth import synthesize
from lpq.stages.train import train


class StudentRow(BaseModel):
    labels: str
    path: Path
    label_bytes: int
    bytes_per_image: float
    compression: float = Field(description="x smaller than every label as dense float16 (lpq inspect's 'vs full')")
    top1: float
    top5: float


class DemoResult(BaseModel):
    teacher_top1: float
    synth_teacher_top1: float
    within_class_cosine: float
    rows: list[StudentRow]
    paths: dict[str, Path]


def _student(cfg: DemoConfig, images: str, labels: Path, run: Path, name: str, show: bool | Show) -> StudentRow:
    """A student on ``labels``, evaluated at its final epoch, and what its labels cost."""
    result = train(
        TrainConfig(
            images=images,
            labels=labels,
            output=run,
            model=cfg.model,
            eval_data=cfg.data,
            epochs=cfg.student_epochs,
            evals=1,
            seed=cfg.seed,
        ),
        show=show,
    )
    s = summarize(labels)
    return StudentRow(
        labels=name,
        path=labels,
        label_bytes=s.file_bytes,
        bytes_per_image=s.file_bytes / s.header.images.count,
        compression=s.compression_vs_full,
        top1=result.top1,
        top5=result.top5,
    )


def run_demo(cfg: DemoConfig, show: bool | Show = False) -> DemoResult:
    out = cfg.output
    if out.exists() and any(out.iterdir()):
        raise LpqError("output-exists", f"{out} already holds files", "choose another -o, or delete it first")
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "teacher": out / "teacher.lpqt",
        "images": out / "syn",
        "labels_full": out / "labels-full.lpql",
        "labels_pruned": out / f"labels-x{cfg.ratio:g}.lpql",
        "labels_compressed": out / f"labels-x{cfg.ratio:g}-mr{cfg.top_k}-{cfg.values}.lpql",
        "run_full": out / "run-full",
        "run_compressed": out / "run-compressed",
    }
    teacher = squeeze(
        SqueezeConfig(
            data=cfg.data, model=cfg.model, epochs=cfg.teacher_epochs, seed=cfg.seed, output=paths["teacher"]
        ),
        show=show,
    )
    synth = synthesize(
        SynthConfig(
            teacher=paths["teacher"],
            output=paths["images"],
            ipc=cfg.ipc,
            iterations=cfg.iterations,
            lr=cfg.synth_lr,
            seed=cfg.seed,
        ),
        show=show,
    )
    images = str(paths["images"])
    relabel(
        RelabelConfig(
            images=images,
            teacher=paths["teacher"],
            output=paths["labels_full"],
            epochs=cfg.label_epochs,
            batch_size=cfg.batch_size,
            seed=cfg.seed,
        ),
        show=show,
    )
    prune_file(PruneConfig(labels=paths["labels_full"], ratio=cfg.ratio, output=paths["labels_pruned"], seed=cfg.seed))
    quantize_file(
        QuantizeConfig(
            labels=paths["labels_pruned"],
            output=paths["labels_compressed"],
            scheme="mr",
            top_k=cfg.top_k,
            values=cfg.values,
        )
    )
    paths["labels_pruned"].unlink()  # an intermediate: the compressed file is what the demo compares
    del paths["labels_pruned"]
    rows = [
        _student(cfg, images, paths["labels_full"], paths["run_full"], "full, float16", show),
        _student(
            cfg,
            images,
            paths["labels_compressed"],
            paths["run_compressed"],
            f"x{cfg.ratio:g} + MR-{cfg.top_k} {cfg.values}",
            show,
        ),
    ]
    return DemoResult(
        teacher_top1=teacher.test_top1,
        synth_teacher_top1=synth.teacher_top1 or 0.0,
        within_class_cosine=synth.within_class_cosine or 0.0,
        rows=rows,
        paths=paths,
    )
