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

from pydantic import BaseModel, Field

from lpq.configs.prune import PruneConfig
from lpq.files import check_paths
from lpq.format import LpqlReader, LpqlWriter
from lpq.format.coverage import Coverage, coverage, members_of
from lpq.method.pruning import prune_more


class PruneResult(BaseModel):
    output: Path
    ratio: float
    batches_before: int
    batches_after: int
    file_bytes_before: int
    file_bytes_after: int
    coverage: Coverage = Field(description="labelled views per image in the output")


def prune_file(cfg: PruneConfig) -> PruneResult:
    """Write the pruned file (chunks copied byte for byte) and report sizes and coverage."""
    check_paths(cfg.labels, cfg.output)
    with LpqlReader(cfg.labels) as r:
        h = r.header
        kept = h.prune.kept
        pruned = prune_more(h, cfg.ratio, cfg.strategy, cfg.seed, members_of(h, r))
        header = h.model_copy(update={"prune": pruned})
        writer = LpqlWriter(cfg.output, header, basis=r.basis)
        try:
            for bid in pruned.kept:
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
        ratio=pruned.ratio,
        batches_before=len(kept),
        batches_after=len(pruned.kept),
        file_bytes_before=before,
        file_bytes_after=cfg.output.stat().st_size,
        coverage=covered,
    )
