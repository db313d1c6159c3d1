"""Stored batches as training data: each item is one whole augmented batch rebuilt from the `.lpql` file.

Every epoch draws as many stored batches as a full relabel epoch has, from the kept pool, in shuffled
cycles through the pool (so a pruned pool is reused evenly: Dynamic Knowledge Reuse's data side). The
draw of epoch e depends only on (seed, e), so a resumed run sees the same batches. Under DDP each rank
takes a disjoint slice of every epoch's draw, padded by cycling so all ranks take the same number of steps.

Items are built in DataLoader workers with the replay function relabel used; targets are made in the main
process from the stored values, since their temperature changes with the epoch.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch.utils.data import Dataset

from lpq.data import ImageSource
from lpq.format import LpqlReader
from lpq.method.replay import render, stored_plan, teacher_input


def epoch_draw(kept: list[int], per_epoch: int, seed: int, epoch: int) -> list[int]:
    """The batch ids of one epoch: shuffled passes over ``kept`` until ``per_epoch`` are drawn."""
    rng = np.random.default_rng([seed, epoch])
    passes = [rng.permutation(kept) for _ in range(math.ceil(per_epoch / len(kept)))]
    return [int(b) for b in np.concatenate(passes)[:per_epoch]]


def rank_share(draw: list[int], rank: int, world: int) -> list[int]:
    steps = math.ceil(len(draw) / world)
    padded = (draw * math.ceil(steps * world / len(draw)))[: steps * world]
    return padded[rank::world]


class ReplayedBatch(NamedTuple):
    """One stored batch rebuilt: what the student sees and what its targets are made from."""

    inputs: torch.Tensor  # (B, 3, S, S) normalized
    values: torch.Tensor  # (B, k) stored logits or probabilities
    indices: torch.Tensor  # (B, k) class ids of the top-k; empty for full labels
    image_indices: torch.Tensor  # (B,) positions in the image set
    partner: torch.Tensor  # (B,) the sample each sample was mixed with
    mix_lambda: float  # weight of a sample's own image in the mix (1.0 without mixing)


class StoredBatches(Dataset):
    """Item i is the i-th batch this rank trains on over ``epochs``, rebuilt from the label file."""

    def __init__(
        self, labels: Path, images: ImageSource, seed: int, epochs: range, rank: int = 0, world: int = 1
    ) -> None:
        self.labels = labels
        self.images = images
        with LpqlReader(labels) as r:
            self.header = r.header
        h = self.header
        self.batch_ids = [
            b
            for e in epochs
            for b in rank_share(epoch_draw(h.prune.kept, h.relabel.batches_per_epoch, seed, e), rank, world)
        ]
        self.hw = images.sizes()
        self.spec = teacher_input(h)
        self._reader: LpqlReader | None = None

    def __len__(self) -> int:
        return len(self.batch_ids)

    def reader(self) -> LpqlReader:
        if self._reader is None:  # one mmap per worker process
            self._reader = LpqlReader(self.labels)
        return self._reader

    def __getitem__(self, i: int) -> ReplayedBatch:
        r = self.reader()
        rec = r.read(self.batch_ids[i])
        plan = stored_plan(r, rec, self.hw)
        x = self.spec.normalize(render(plan, self.images, self.header))
        indices = torch.from_numpy(rec.indices) if rec.indices is not None else torch.empty(0, dtype=torch.int64)
        return ReplayedBatch(
            x,
            torch.from_numpy(rec.values),
            indices,
            torch.from_numpy(plan.image_indices),
            torch.from_numpy(plan.partner),
            plan.mix_lambda,
        )

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_reader"] = None
        return state
