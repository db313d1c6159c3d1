"""Stored batches as training data: each item is one whole augmented batch rebuilt from the `.lpql` file.

Every epoch draws as many stored batches as a full relabel epoch has, from the kept pool, in shuffled
cycles through the pool (so a pruned pool is reused evenly: Dynamic Knowledge Reuse's data side). The
draw of epoch e depends only on (seed, e), so a resumed run sees the same batches. Under DDP, `lpq train`
gives every rank every batch and each rank trains on its slice of the samples (``shard_rows``): the global
batch, the sample order and the number of steps are one process's. ``DistilledDataset(rank=, world=)``
instead hands each rank whole batches, a disjoint share of every epoch's draw (a DistributedSampler's way:
the global batch grows with the ranks).

Items are built in DataLoader workers with the replay function relabel used. ``StoredBatches`` (what `lpq
train` uses) leaves the targets to the main process, which also needs the images' classes for hard-label
baselines; ``DistilledDataset`` (for your own training loop) returns them ready, at the epoch's temperature.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch.utils.data import Dataset

from lpq.data import ImageSource, open_images
from lpq.errors import LpqError
from lpq.format import LpqlReader, TempSchedule
from lpq.method.replay import render, stored_plan, teacher_input
from lpq.method.targets import dense_targets
from lpq.method.temperature import teacher_temperature


def epoch_draw(kept: list[int], per_epoch: int, seed: int, epoch: int) -> list[int]:
    """The batch ids of one epoch: shuffled passes over ``kept`` until ``per_epoch`` are drawn."""
    rng = np.random.default_rng([seed, epoch])
    passes = [rng.permutation(kept) for _ in range(math.ceil(per_epoch / len(kept)))]
    return [int(b) for b in np.concatenate(passes)[:per_epoch]]


def rank_share(draw: list[int], rank: int, world: int) -> list[int]:
    steps = math.ceil(len(draw) / world)
    padded = (draw * math.ceil(steps * world / len(draw)))[: steps * world]
    return padded[rank::world]


def shard_rows(size: int, rank: int, world: int) -> tuple[slice, float]:
    """The rows of a ``size``-sample batch that ``rank`` of ``world`` trains on (contiguous, sizes differing by at
    most one), and the weight of its mean loss so that the mean over ranks is the whole batch's mean. A rank
    left without rows (a last batch smaller than the world) takes row 0 at weight 0: every rank must step."""
    lo, hi = size * rank // world, size * (rank + 1) // world
    if lo == hi:
        return slice(0, 1), 0.0
    return slice(lo, hi), (hi - lo) * world / size


class ReplayedBatch(NamedTuple):
    """One stored batch rebuilt: what the student sees and what its targets are made from."""

    inputs: torch.Tensor  # (B, 3, S, S) normalized
    values: torch.Tensor  # (B, k) stored logits or probabilities
    indices: torch.Tensor | None  # (B, k) class ids of the top-k; None for full labels (as dense_targets takes)
    image_indices: torch.Tensor  # (B,) positions in the image set
    partner: torch.Tensor  # (B,) the sample each sample was mixed with
    mix_lambda: float  # weight of a sample's own image in the mix (1.0 without mixing)


class StoredBatches(Dataset):
    """Item i is the i-th batch this rank trains on over ``epochs``, rebuilt from the label file."""

    def __init__(
        self,
        labels: Path,
        images: ImageSource,
        seed: int,
        epochs: range,
        rank: int = 0,
        world: int = 1,
        input_size: int | None = None,
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
        self.size = input_size or h.augment.input_size  # the student's side S; the teacher's unless given
        self.spec = teacher_input(h).at_size(self.size)
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
        x = self.spec.normalize(render(plan, self.images, self.header, self.size))
        indices = torch.from_numpy(rec.indices) if rec.indices is not None else None
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


class DistilledDataset(Dataset):
    """A distilled image set and its `.lpql` labels as ``(inputs, targets)`` batches for your own training loop.

    Item i of an epoch is one stored batch replayed exactly as the teacher labelled it: ``inputs`` (B, 3, S, S)
    normalized as the teacher's inputs were, ``targets`` (B, C) the soft labels at the epoch's teacher
    temperature (Dynamic Knowledge Reuse: the label file's schedule, or ``schedule``, over ``epochs``), full,
    MR or MS labels alike; ``input_size`` renders the views at a student resolution of its own (the teacher's
    by default). An epoch has as many batches as a relabel epoch, drawn from the stored (possibly
    pruned) pool as `lpq train` draws them; call ``set_epoch`` before each epoch, as with DistributedSampler.
    Items are whole batches: use ``DataLoader(dataset, batch_size=None, num_workers=N)``. The images must be
    the ones the labels were made for (their fingerprint is checked).

        data = DistilledDataset("syn/", "labels.lpql", epochs=300)
        for epoch in range(300):
            data.set_epoch(epoch)
            for inputs, targets in DataLoader(data, batch_size=None, num_workers=4):
                loss = kd_loss(model(inputs), targets, student_temp=1.0)
    """

    def __init__(
        self,
        images: str | Path | ImageSource,
        labels: str | Path,
        epochs: int | None = None,
        schedule: TempSchedule | None = None,
        seed: int = 0,
        rank: int = 0,
        world: int = 1,
        input_size: int | None = None,
    ) -> None:
        self.images = open_images(str(images)) if isinstance(images, str | Path) else images
        self.labels = Path(labels)
        with LpqlReader(self.labels) as r:
            self.header, calibration = r.header, r.calibration
        if self.images.fingerprint() != self.header.images.fingerprint:
            raise LpqError(
                "fingerprint-mismatch",
                f"{self.labels} was made for other images than {images}",
                "pass the image set the labels were relabelled from",
            )
        self.schedule = schedule or (calibration.teacher_schedule if calibration else TempSchedule())
        self.epochs = epochs or self.header.relabel.epochs
        self.seed, self.rank, self.world, self.input_size = seed, rank, world, input_size
        self.set_epoch(0)

    @property
    def num_classes(self) -> int:
        return self.header.num_classes

    def set_epoch(self, epoch: int) -> None:
        """Draw epoch ``epoch``'s batches and set its teacher temperature (``self.temperature``)."""
        self.epoch = epoch
        self.temperature = teacher_temperature(self.schedule, epoch, self.epochs)
        self._batches = StoredBatches(
            self.labels, self.images, self.seed, range(epoch, epoch + 1), self.rank, self.world, self.input_size
        )

    def __len__(self) -> int:
        return len(self._batches)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        b = self._batches[i]
        q = self.header.quant
        return b.inputs, dense_targets(b.values, b.indices, q.scheme, self.header.num_classes, self.temperature)
