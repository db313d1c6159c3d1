"""Several students on the same images and labels, one per seed, reported as mean and standard deviation.

Seed-to-seed spread of a distilled-data student is often 1-3 points, more than many differences one wants
to measure, so comparisons are made over seeds: OUT/seed-<s>/ is a complete `lpq train` run for each seed
s = seed, seed + 1, ...; the headline is each student's final-epoch test accuracy (never the best epoch's),
as mean and sample standard deviation. With ``resume`` a finished seed is read back (after the same
settings check as any resume), an interrupted one continues from its checkpoint, and missing ones start.

    lpq train syn/ labels.lpql --seeds 3 --eval-data cifar10 -o runs/x40/
"""

from __future__ import annotations

import statistics
from pathlib import Path

from pydantic import BaseModel, Field

from lpq.errors import LpqError
from lpq.files import write_model
from lpq.train.train import STATE, TrainConfig, TrainResult, train

SUMMARY = "seeds.json"


class SeedsResult(BaseModel):
    output: Path
    seeds: list[int]
    top1_mean: float
    top1_sd: float = Field(description="sample standard deviation over seeds (0 for one seed)")
    top5_mean: float
    top5_sd: float
    label_bytes: int
    label_scheme: str
    runs: list[TrainResult]


def _sd(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def seed_folder(output: Path, seed: int) -> Path:
    return output / f"seed-{seed}"


def train_seeds(cfg: TrainConfig, show: bool = False) -> SeedsResult:
    """``cfg.seeds`` students into OUT/seed-<s>/; mean and sd of their final-epoch accuracy."""
    out = cfg.output
    if not cfg.resume and out.exists() and any(out.iterdir()):
        raise LpqError(
            "run-exists", f"{out} already holds runs", "pass --resume to continue them, or choose another -o"
        )
    runs = []
    for seed in range(cfg.seed, cfg.seed + cfg.seeds):
        folder = seed_folder(out, seed)
        run = cfg.model_copy(
            update={"seed": seed, "seeds": 1, "output": folder, "resume": cfg.resume and (folder / STATE).exists()}
        )
        runs.append(train(run, show=show))  # a finished run resumes to its result without training
    top1 = [r.top1 for r in runs]
    top5 = [r.top5 for r in runs]
    result = SeedsResult(
        output=out,
        seeds=[r.seed for r in runs],
        top1_mean=statistics.fmean(top1),
        top1_sd=_sd(top1),
        top5_mean=statistics.fmean(top5),
        top5_sd=_sd(top5),
        label_bytes=runs[0].label_bytes,
        label_scheme=runs[0].label_scheme,
        runs=runs,
    )
    write_model(out / SUMMARY, result)
    return result
