"""`lpq prune`: keep round(total / ratio) of a label file's batches (LPQLD stage 4; README, "The method").

Ratios compose: pruning an x40 file by 2 gives x80 of the original epochs and batches. Chunks are copied
byte for byte, so pruning never changes a kept label. The authors keep the first batches; random choice
(seeded) is the default here, as they found no rule that beats it once images are diverse.

    lpq prune labels.lpql --ratio 40 -o small.lpql
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field

from lpq.errors import LpqError
from lpq.format import LpqlReader, LpqlWriter, Prune


class PruneConfig(BaseModel):
    labels: Path = Field(description="input .lpql file (left untouched)")
    ratio: float = Field(ge=1.0, description="keep round(total / ratio) batches; composes with earlier pruning")
    output: Path
    strategy: Literal["random", "first"] = "random"
    seed: int = Field(0, ge=0)


class PruneResult(BaseModel):
    output: Path
    ratio: float
    batches_before: int
    batches_after: int
    file_bytes_before: int
    file_bytes_after: int


def check_paths(src: Path, dst: Path) -> None:
    """Refuse to write over the input or over any existing file."""
    if dst.resolve() == src.resolve():
        raise LpqError("output-is-input", f"-o {dst} is the input file", "write to a new file")
    if dst.exists():
        raise LpqError("output-exists", f"{dst} already exists", "choose another -o, or delete it first")


def choose_batches(pool: list[int], total: int, ratio: float, step: float, strategy: str, seed: int) -> list[int]:
    """The batch ids a pruning keeps: round(total / ratio) of ``pool`` (at least 1), the first ones or a seeded
    random sorted subset. ``total`` is the run's batch count, ``ratio`` the overall pruning ratio and ``step``
    this pruning's share of it, so prunings compose (x4 then x2 is x8)."""
    keep = max(1, round(total / ratio))
    if step > len(pool) or keep > len(pool):
        raise LpqError(
            "bad-ratio",
            f"ratio {step:g} asks for more pruning than {len(pool)} batches allow",
            "choose a smaller --ratio",
        )
    if strategy == "first":
        return pool[:keep]
    return sorted(np.random.default_rng(seed).choice(np.asarray(pool), size=keep, replace=False).tolist())


def prune_file(cfg: PruneConfig) -> PruneResult:
    check_paths(cfg.labels, cfg.output)
    with LpqlReader(cfg.labels) as r:
        h = r.header
        kept = h.prune.kept
        total_ratio = h.prune.ratio * cfg.ratio
        chosen = choose_batches(kept, h.relabel.total_batches, total_ratio, cfg.ratio, cfg.strategy, cfg.seed)
        header = h.model_copy(
            update={"prune": Prune(ratio=total_ratio, strategy=cfg.strategy, seed=cfg.seed, kept=chosen)}
        )
        writer = LpqlWriter(cfg.output, header)
        try:
            for bid in chosen:
                writer.add_encoded(bid, r.payload(bid))
            writer.finish(r.calibration)
        except BaseException:
            writer.discard()
            raise
        before = r.size
    return PruneResult(
        output=cfg.output,
        ratio=total_ratio,
        batches_before=len(kept),
        batches_after=len(chosen),
        file_bytes_before=before,
        file_bytes_after=cfg.output.stat().st_size,
    )
