"""Which stored batches label pruning keeps (LPQLD stage 4): how many, and which under each strategy.

``cover`` keeps whole relabel epochs in random order, then a random part of one more, so every image is
labelled floor(views per image) times or once more (the authors keep the first whole epochs, with the same
effect); ``first`` the first batches; ``random`` a seeded random subset, which can leave images unlabelled.
"""

from __future__ import annotations

import numpy as np

from lpq.errors import LpqError
from lpq.format import Header, Prune
from lpq.format.coverage import Members


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


def prune_more(header: Header, step: float, strategy: str, seed: int, members: Members) -> Prune:
    """The pruning of ``header``'s labels pruned by ``step`` more (prunings compose: an x4 file pruned by 2 is
    x8), its kept batches chosen from those stored under ``strategy``."""
    kept = header.prune.kept
    ratio = header.prune.ratio * step
    keep = keep_count(len(kept), header.relabel.total_batches, ratio, step)
    chosen = choose_batches(kept, keep, strategy, seed, members)
    return Prune(ratio=ratio, strategy=strategy, seed=seed, kept=chosen)  # type: ignore[arg-type]


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
