"""Stored batches as training data: each item is one whole augmented batch rebuilt from the `.lpql` file.

Every epoch draws as many stored batches as a full relabel epoch has, from the kept pool, in shuffled
cycles through the pool (so a pruned pool is reused evenly: Dynamic Knowledge Reuse's data side). The
draw of epoch e depends only on (seed, e), so a resumed run sees the same batches. Under DDP, `lpq train`
gives every rank every batch and each rank trains on its slice of the samples (``shard_rows``): the global
batch, the sample order and the number of steps are one process's. ``DistilledDataset(rank=, world=)``
instead hands each rank whole batches, a disjoint share of every epoch's draw (a DistributedSampler's way:
the global batch grows with the ranks).

Which batches an epoch replays is a sampler's choice (``BatchDraw``), made in the main process; items are keyed
by ``(epoch, batch id)`` and built in DataLoader workers with the replay function relabel used, so no worker
holds an epoch that could go stale. ``StoredBatches`` (what `lpq train` uses) leaves the targets to the main
process, which also needs the images' classes for hard-label baselines; ``DistilledDataset`` (for your own
training loop) returns them ready, at the key's epoch's temperature.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from lpq.data import ImageSource, open_images
from lpq.data.transforms import normalize
from lpq.errors import LpqError
from lpq.format import Header, LpqlReader, TempSchedule
from lpq.method.replay import check_images, render, stored_plan, view_input
from lpq.method.targets import stored_targets
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


class BatchDraw(Sampler[tuple[int, int]]):
    """The keys ``(epoch, stored batch id)`` of the epochs in ``epochs``, this rank's share of each epoch's draw.

    A sampler runs in the main process (DataLoader asks it for keys and hands them to its workers), so the epoch
    lives here and not in a dataset that every worker copies: ``set_epoch`` before an epoch takes effect under
    ``persistent_workers=True`` too, as DistributedSampler's does.
    """

    def __init__(
        self, kept: list[int], per_epoch: int, seed: int = 0, epochs: range = range(1), rank: int = 0, world: int = 1
    ) -> None:
        self.kept, self.per_epoch, self.seed = kept, per_epoch, seed
        self.epochs, self.rank, self.world = epochs, rank, world

    @classmethod
    def of(cls, header: Header, seed: int = 0, epochs: range = range(1), rank: int = 0, world: int = 1) -> BatchDraw:
        """The draw over a label file's kept batches, an epoch as long as its relabel epochs."""
        return cls(header.prune.kept, header.relabel.batches_per_epoch, seed, epochs, rank, world)

    def set_epoch(self, epoch: int) -> None:
        self.epochs = range(epoch, epoch + 1)

    @property
    def epoch(self) -> int:
        return self.epochs.start

    def __len__(self) -> int:
        return len(self.epochs) * math.ceil(self.per_epoch / self.world)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        for e in self.epochs:
            for b in rank_share(epoch_draw(self.kept, self.per_epoch, self.seed, e), self.rank, self.world):
                yield e, b


class StoredBatches(Dataset):
    """Stored batches rebuilt from the label file: the item of key ``(epoch, batch id)`` (a `BatchDraw`'s keys) is
    that batch replayed, its views rendered at ``input_size`` (the teacher's input size by default)."""

    def __init__(self, labels: Path, images: ImageSource, input_size: int | None = None) -> None:
        self.labels = labels
        self.images = images
        with LpqlReader(labels) as r:
            self.header, self.basis = r.header, r.basis
        self.hw = images.sizes()
        self.size = input_size or self.header.augment.input_size  # the student's side S; the teacher's unless given
        self.spec = view_input(self.header, self.size)
        self._reader: LpqlReader | None = None

    def reader(self) -> LpqlReader:
        if self._reader is None:  # one mmap per worker process
            self._reader = LpqlReader(self.labels)
        return self._reader

    def __getitem__(self, key: tuple[int, int]) -> ReplayedBatch:
        if not isinstance(key, tuple):
            raise LpqError(
                "dataset-needs-sampler",
                f"stored batches are keyed by (epoch, batch), not by {type(key).__name__} {key!r}",
                "pass the dataset's sampler: DataLoader(data, sampler=data.sampler, batch_size=None)",
            )
        r = self.reader()
        rec = r.read(key[1])
        plan = stored_plan(r, rec, self.hw)
        x = normalize(self.spec, render(plan, self.images, self.header, self.size))
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


class DistilledDataset(StoredBatches):
    """A distilled image set and its `.lpql` labels as ``(inputs, targets)`` batches for your own training loop.

    Each item is one stored batch replayed exactly as the teacher labelled it: ``inputs`` (B, 3, S, S)
    normalized as the teacher's inputs were, ``targets`` (B, C) the soft labels at its epoch's teacher
    temperature (Dynamic Knowledge Reuse: the label file's schedule, or ``schedule``, over ``epochs``), full,
    MR or MS labels alike; ``input_size`` renders the views at a student resolution of its own (the teacher's
    by default). Which batches an epoch replays is drawn by ``data.sampler`` in the main process (as many as a
    relabel epoch has, from the stored, possibly pruned, pool, as `lpq train` draws them): pass it to the
    DataLoader and call ``data.set_epoch`` (or ``data.sampler.set_epoch``) before each epoch. Workers receive
    ``(epoch, batch)`` keys and hold no epoch of their own, so persistent workers never replay a stale one.
    Items are whole batches: ``batch_size=None``. The images must be the ones the labels were made for (their
    fingerprint is checked).

        data = DistilledDataset("syn/", "labels.lpql", epochs=300)
        loader = DataLoader(data, sampler=data.sampler, batch_size=None, num_workers=4, persistent_workers=True)
        for epoch in range(300):
            data.set_epoch(epoch)
            for inputs, targets in loader:
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
        source = open_images(str(images)) if isinstance(images, str | Path) else images
        super().__init__(Path(labels), source, input_size)
        with LpqlReader(self.labels) as r:
            calibration = r.calibration
        check_images(self.images, self.header, self.labels, images)
        self.schedule = schedule or (calibration.teacher_schedule if calibration else TempSchedule())
        self.epochs = epochs or self.header.relabel.epochs
        self.sampler = BatchDraw.of(self.header, seed, range(1), rank, world)

    @property
    def num_classes(self) -> int:
        return self.header.num_classes

    def set_epoch(self, epoch: int) -> None:
        """Let the sampler draw epoch ``epoch``'s batches next (it lives in the main process)."""
        self.sampler.set_epoch(epoch)

    @property
    def temperature(self) -> float:
        """The teacher temperature of the sampler's epoch."""
        return self.temperature_at(self.sampler.epoch)

    def temperature_at(self, epoch: int) -> float:
        return teacher_temperature(self.schedule, epoch, self.epochs)

    def __len__(self) -> int:
        return len(self.sampler)

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:  # type: ignore[override]
        b = super().__getitem__(key)
        t = self.temperature_at(key[0])
        return b.inputs, stored_targets(b.values, b.indices, self.header, t, self.basis)
