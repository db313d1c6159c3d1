"""`lpq prune`: keep round(total / ratio) of a label file's batches (LPQLD stage 4; README, "The method").

Ratios compose: pruning an x40 file by 2 gives x80 of the original epochs and batches. Chunks are copied
byte for byte, so pruning never changes a kept label. Strategies: ``cover`` (the default) keeps whole epochs
chosen at random, then a random part of one more epoch, so every image is labelled floor(views per image)
times or once more, as the authors' "first whole epochs" does; ``first`` keeps the first batches (the
authors' choice); ``random`` a seeded random subset, which can leave images unlabelled (x40 of 50 epochs of
2,000 images in batches of 64 never labels 28% of them).

    lpq prune labels.lpql --ratio 40 -o small.lpql
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field

from lpq.errors import LpqError
from lpq.format import LpqlReader, LpqlWriter, Prune
from lpq.format.coverage import Coverage, Members, coverage, members_of


class PruneConfig(BaseModel):
    labels: Path = Field(description="input .lpql file (left untouched)")
    ratio: float = Field(ge=1.0, description="keep round(total / ratio) batches; composes with earlier pruning")
    output: Path
    strategy: Literal["cover", "random", "first"] = "cover"
    seed: int = Field(0, ge=0)


class PruneResult(BaseModel):
    output: Path
    ratio: float
    batches_before: int
    batches_after: int
    file_bytes_before: int
    file_bytes_after: int
    coverage: Coverage = Field(description="labelled views per image in the output")


def check_paths(src: Path, dst: Path) -> None:
    """Refuse to write over the input or over any existing file."""
    if dst.resolve() == src.resolve():
        raise LpqError("output-is-input", f"-o {dst} is the input file", "write to a new file")
    if dst.exists():
        raise LpqError("output-exists", f"{dst} already exists", "choose another -o, or delete it first")


def keep_count(pool: int, total: int, ratio: float, step: float) -> int:
    """How many batches a pruning keeps: round(total / ratio), at least 1. ``total`` is the run's batch count,
    ``ratio`` the overall pruning ratio and ``step`` this pruning's share of it, so prunings compose (x4 then x2
    is x8); ``pool`` is how many batches there are to keep from."""
    keep = max(1, round(total / ratio))
    if step > pool or keep > pool:
        raise LpqError(
            "bad-ratio", f"ratio {step:g} asks for more pruning than {pool} batches allow", "choose a smaller --ratio"
        )
    return keep


def choose_batches(pool: list[int], keep: int, strategy: str, seed: int, members: Members) -> list[int]:
    """The sorted ids of ``keep`` batches of ``pool`` under a strategy (module docstring)."""
    rng = np.random.default_rng(seed)
    if strategy == "first":
        return pool[:keep]
    if strategy == "random":
        return sorted(rng.choice(np.asarray(pool), size=keep, replace=False).tolist())
    return sorted(_cover(pool, keep, members, rng))


def _cover(pool: list[int], keep: int, members: Members, rng: np.random.Generator) -> list[int]:
    """Whole epochs of the pool in random order while they fit, then a random part of one more whole epoch (a
    derived epoch's batches hold each image once, so the counts differ by at most one). Where the pool has no
    whole epoch left (a file pruned at random before), the rest is filled greedily, each pick the batch whose
    images have the fewest views so far."""
    per_epoch = members.batches_per_epoch
    epochs: dict[int, list[int]] = {}
    for b in pool:
        epochs.setdefault(b // per_epoch, []).append(b)
    whole = [e for e, ids in epochs.items() if len(ids) == per_epoch]
    chosen: list[int] = []
    for e in rng.permutation(whole).tolist() if whole else []:
        left = keep - len(chosen)
        if left == 0:
            break
        ids = epochs.pop(e)
        chosen += ids if left >= per_epoch else rng.choice(ids, size=left, replace=False).tolist()
    if len(chosen) == keep:
        return chosen
    counts = np.zeros(members.num_images, dtype=np.int64)
    for b in chosen:
        counts[members(b)] += 1
    rest = [b for ids in epochs.values() for b in ids]
    candidates = [(b, members(b)) for b in (rest[i] for i in rng.permutation(len(rest)))]
    while len(chosen) < keep:
        weight = 0.25 ** (counts - counts.min())  # an image one view short of another outweighs four of them
        best = max(range(len(candidates)), key=lambda i: float(weight[candidates[i][1]].sum()))
        b, held = candidates.pop(best)
        counts[held] += 1
        chosen.append(b)
    return chosen


def prune_file(cfg: PruneConfig) -> PruneResult:
    check_paths(cfg.labels, cfg.output)
    with LpqlReader(cfg.labels) as r:
        h = r.header
        kept = h.prune.kept
        total_ratio = h.prune.ratio * cfg.ratio
        keep = keep_count(len(kept), h.relabel.total_batches, total_ratio, cfg.ratio)
        chosen = choose_batches(kept, keep, cfg.strategy, cfg.seed, members_of(h, r))
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
    with LpqlReader(cfg.output) as out:
        covered = coverage(out)
    return PruneResult(
        output=cfg.output,
        ratio=total_ratio,
        batches_before=len(kept),
        batches_after=len(chosen),
        file_bytes_before=before,
        file_bytes_after=cfg.output.stat().st_size,
        coverage=covered,
    )
