"""Batches of prepared images from any image source, decoded and transformed in DataLoader workers.

An unreadable file is reported as data, not raised inside a worker (a worker's exception would reach the
main process as a RuntimeError with a traceback): the main process then stops with one `BadImage` error
naming the file, or with ``skip_bad`` leaves the file out and counts it. In-memory sets whose images are
already the model's size skip the DataLoader and are sliced and normalized in place (the fast path).

    for x, y in Batches(source, eval_transform(spec), batch_size=256, workers=default_workers()):
        ...
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
from torch.utils.data import DataLoader, Dataset

from lpq.data.sources import BadImage, ImageSet, ImageSource
from lpq.data.transforms import InputSpec, Transform, eval_transform, normalize, train_transform
from lpq.errors import LpqError


def default_workers() -> int:
    """Decoding workers: one per core beside the main process's, at least 1 and at most 8."""
    return max(1, min(8, (os.cpu_count() or 2) - 1))


Item = tuple[torch.Tensor | None, int, str]


class _Prepared(Dataset):
    def __init__(self, source: ImageSource, transform: Transform) -> None:
        self.source, self.transform = source, transform

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, i: int) -> Item:
        label = int(self.source.labels[i])
        try:
            return self.transform(self.source.load(i)), label, ""
        except BadImage as e:
            return None, label, str(e)


def _collate(items: list[Item]) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    good = [(x, y) for x, y, _ in items if x is not None]
    bad = [err for x, _, err in items if x is None]
    if not good:
        return torch.empty(0), torch.empty(0, dtype=torch.int64), bad
    return torch.stack([x for x, _ in good]), torch.tensor([y for _, y in good]), bad


@dataclass
class Batches:
    """An iterable of (inputs (B, 3, S, S) float32, labels (B,)) over a source; ``skipped`` counts bad files."""

    source: ImageSource
    transform: Transform
    batch_size: int = 256
    workers: int = 0
    shuffle: bool = False
    seed: int = 0
    skip_bad: bool = False
    pin_memory: bool = False
    fast: InputSpec | None = field(default=None, repr=False)  # set: in-memory slicing with this spec's normalization
    skipped: list[str] = field(default_factory=list)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        if self.fast is not None and isinstance(self.source, ImageSet):
            yield from self._sliced(self.source, self.fast)
            return
        gen = torch.Generator().manual_seed(self.seed)
        loader = DataLoader(
            _Prepared(self.source, self.transform),
            batch_size=self.batch_size,
            shuffle=self.shuffle,
            generator=gen,
            num_workers=self.workers,
            collate_fn=_collate,
            pin_memory=self.pin_memory,
            prefetch_factor=4 if self.workers else None,
            persistent_workers=False,
        )
        for x, y, bad in loader:
            if bad and not self.skip_bad:
                raise LpqError("data-bad-image", bad[0].removeprefix("data-bad-image: "))
            self.skipped += bad
            if len(y):
                yield x, y

    def _sliced(self, data: ImageSet, spec: InputSpec) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = (
            torch.randperm(len(data), generator=torch.Generator().manual_seed(self.seed))
            if self.shuffle
            else torch.arange(len(data))
        )
        for i in range(0, len(data), self.batch_size):
            idx = order[i : i + self.batch_size]
            yield normalize(spec, data.images[idx]), data.labels[idx]


def check_fits(source: ImageSource, spec: InputSpec) -> None:
    """Images used at their own size (resize rule 'none') must have the model's size: checked up front."""
    if spec.resize != "none" or not len(source):
        return
    h, w = (int(v) for v in (source.images.shape[2:] if isinstance(source, ImageSet) else source.sizes()[0]))
    if (h, w) != (spec.size, spec.size):
        raise LpqError(
            "data-size-mismatch",
            f"{source.name} holds {h} x {w} px images; the model takes {spec.size} x {spec.size} px images as they are",
            "use data of the resolution the teacher was made for",
        )


def batches(source: ImageSource, spec: InputSpec, train: bool = False, **kwargs: object) -> Batches:
    """Batches prepared by the spec's evaluation (or training) transform; in-memory sets already of the
    spec's size take the fast path when no augmentation is asked for."""
    check_fits(source, spec)
    in_place = not train and spec.resize == "none" and isinstance(source, ImageSet)
    return Batches(
        source,
        train_transform(spec) if train else eval_transform(spec),  # type: ignore[arg-type]
        fast=spec if in_place else None,
        **kwargs,
    )


def share(source: ImageSource, part: range) -> ImageSource:
    """The images ``part`` of a source, as a source: a rank's share of a split (`lpq.runtime.rank_range`)."""
    if isinstance(source, ImageSet):
        return ImageSet(
            source.name, source.images[part.start : part.stop], source.labels[part.start : part.stop],
            source.classes, source.mean, source.std,
        )  # fmt: skip
    return subset(source, list(part))


def subset(source: ImageSource, indices: list[int]) -> ImageSource:
    """The images ``indices`` of a source, in that order, as a source (a sample of a split)."""
    if isinstance(source, ImageSet):
        idx = torch.tensor(indices, dtype=torch.long)
        return ImageSet(source.name, source.images[idx], source.labels[idx], source.classes, source.mean, source.std)
    return _Subset(source, indices)  # type: ignore[return-value]


class _Subset:
    """Some images of a source, as a source (a rank's share, a sample for statistics)."""

    def __init__(self, source: ImageSource, indices: list[int]) -> None:
        self.source, self.indices = source, indices
        self.name, self.classes = source.name, source.classes
        self.labels = source.labels[indices]

    def __len__(self) -> int:
        return len(self.indices)

    def load(self, index: int) -> torch.Tensor:
        return self.source.load(self.indices[index])


def sample_stats(
    source: ImageSource, size: int, samples: int = 500, workers: int = 0, seed: int = 0
) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """Per-channel mean and standard deviation in [0, 1] of a random sample of a large set, as evaluation
    prepares it (shorter side to size / 0.875, central crop): the normalization of a teacher trained on it."""
    rng = torch.Generator().manual_seed(seed)
    pick = torch.randperm(len(source), generator=rng)[:samples].sort().values.tolist()
    plain = InputSpec(size=size, resize="center-crop", mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    total = torch.zeros(3, dtype=torch.float64)
    square = torch.zeros(3, dtype=torch.float64)
    count = 0
    for x, _ in Batches(
        _Subset(source, pick),
        eval_transform(plain),
        batch_size=64,
        workers=workers,  # type: ignore[arg-type]
        skip_bad=True,
    ):
        total += x.double().sum(dim=(0, 2, 3))
        square += x.double().square().sum(dim=(0, 2, 3))
        count += x.shape[0] * x.shape[2] * x.shape[3]
    mean = total / count
    std = (square / count - mean.square()).sqrt()
    return (float(mean[0]), float(mean[1]), float(mean[2])), (float(std[0]), float(std[1]), float(std[2]))
