"""Which images a label file's batches hold, and how many labelled views each image gets.

A student only ever sees an image through a stored batch, so pruning that keeps some batches can leave
images unlabelled (random x40 of 50 epochs of 2,000 images in batches of 64 never labels 28% of them).
Batch membership is derived from the header alone (the epoch shuffles of spec section 6.3), except with
stored augmentation, where each chunk lists its images.

    from lpq.format import LpqlReader
    from lpq.format.coverage import coverage
    with LpqlReader("labels.lpql") as r:
        print(coverage(r))

Not for: choosing which batches to keep (lpq's pruning does that, with ``members_of``).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from pydantic import BaseModel, Field

from lpq.format.header import Header
from lpq.format.reader import LpqlReader
from lpq.format.rng import epoch_order


class BatchMembers:
    """Global batch id -> the image positions it holds, for batches derived from (seed, N, B)."""

    def __init__(self, seed: int, num_images: int, batch_size: int) -> None:
        self.seed, self.num_images, self.batch_size = seed, num_images, batch_size
        self.batches_per_epoch = -(-num_images // batch_size)
        self._order: tuple[int, np.ndarray] | None = None  # one epoch cached: callers go mostly in epoch order

    def __call__(self, batch_id: int) -> np.ndarray:
        epoch, batch = divmod(int(batch_id), self.batches_per_epoch)
        if self._order is None or self._order[0] != epoch:
            self._order = (epoch, epoch_order(self.seed, epoch, self.num_images))
        return self._order[1][batch * self.batch_size : (batch + 1) * self.batch_size]


class StoredMembers:
    """Batch id -> image positions, read from a file with stored augmentation (its chunks list them)."""

    def __init__(self, reader: LpqlReader) -> None:
        h = reader.header
        self.reader, self.num_images, self.batches_per_epoch = reader, h.images.count, h.relabel.batches_per_epoch

    def __call__(self, batch_id: int) -> np.ndarray:
        return self.reader.image_indices(self.reader.read(batch_id))


Members = BatchMembers | StoredMembers


def members_of(header: Header, reader: LpqlReader | None = None) -> Members:
    """Which images each batch of a label file holds: derived from its seed, or read through ``reader``."""
    if not header.augment.stored:
        return BatchMembers(header.relabel.seed, header.images.count, header.relabel.batch_size)
    if reader is None:
        raise ValueError("a file with stored augmentation lists its batches' images: pass its reader")
    return StoredMembers(reader)


class Coverage(BaseModel):
    """Labelled views per image over a file's stored batches."""

    images: int
    never: int = Field(description="images no stored batch holds: a student never sees them")
    once: int
    twice_or_more: int
    min_views: int
    max_views: int
    mean_views: float

    @classmethod
    def of(cls, counts: np.ndarray) -> Coverage:
        """From views per image (N,)."""
        return cls(
            images=len(counts),
            never=int((counts == 0).sum()),
            once=int((counts == 1).sum()),
            twice_or_more=int((counts >= 2).sum()),
            min_views=int(counts.min()),
            max_views=int(counts.max()),
            mean_views=float(counts.mean()),
        )


def view_counts(batch_ids: Iterable[int], members: Members) -> np.ndarray:
    """(N,) int64: how many samples of these batches show each image as their own (a CutMix partner's patch
    not counted)."""
    counts = np.zeros(members.num_images, dtype=np.int64)
    for bid in batch_ids:
        np.add.at(counts, members(int(bid)), 1)  # an imported batch may hold an image twice
    return counts


def coverage(reader: LpqlReader) -> Coverage:
    """Views per image over the stored batches of an open label file."""
    return Coverage.of(view_counts(reader.batch_ids, members_of(reader.header, reader)))
