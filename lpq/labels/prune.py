"""`lpq prune`: keep round(total / ratio) of a label file's batches (METHOD.md section 2, stage 4).

Ratios compose: pruning an x40 file by 2 gives x80 of the original epochs and batches. Chunks are copied
byte for byte, so pruning never changes a kept label. The authors keep the first batches; random choice
(seeded) is the default here, as they found no rule that beats it once images are diverse.

    lpq prune labels.lpql --ratio 40 -o small.lpql
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel

from lpq.errors import LpqError
from lpq.format import LpqlReader, LpqlWriter, Prune


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


def prune_file(src: Path, ratio: float, output: Path, strategy: Literal["random", "first"] = "random",
               seed: int = 0) -> PruneResult:
    check_paths(src, output)
    if ratio < 1:
        raise LpqError("bad-ratio", f"pruning ratio {ratio:g} is below 1")
    with LpqlReader(src) as r:
        h = r.header
        kept = h.prune.kept
        total_ratio = h.prune.ratio * ratio
        keep = max(1, round(h.relabel.total_batches / total_ratio))
        if ratio > len(kept) or keep > len(kept):
            raise LpqError("bad-ratio", f"ratio {ratio:g} asks for more pruning than {len(kept)} stored batches allow",
                           "choose a smaller --ratio")
        if strategy == "first":
            chosen = kept[:keep]
        else:
            chosen = sorted(np.random.default_rng(seed).choice(kept, size=keep, replace=False).tolist())
        header = h.model_copy(update={"prune": Prune(ratio=total_ratio, strategy=strategy, seed=seed, kept=chosen)})
        writer = LpqlWriter(output, header)
        try:
            for bid in chosen:
                writer.add_encoded(bid, r.payload(bid))
            writer.finish(r.calibration)
        except BaseException:
            writer.discard()
            raise
        before = r.size
    return PruneResult(output=output, ratio=total_ratio, batches_before=len(kept), batches_after=len(chosen),
                       file_bytes_before=before, file_bytes_after=output.stat().st_size)

