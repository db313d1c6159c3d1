"""What `lpq inspect` reports about a label file: where its bytes go and what it compresses against.

from lpq.format.summary import summarize
print(summarize("labels.lpql").model_dump_json(indent=2))
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel

from lpq.format.coverage import Coverage, coverage
from lpq.format.header import Calibration, Header
from lpq.format.layout import FRAME, INDEX_ENTRY
from lpq.format.reader import LpqlReader

# Of a batch chunk's 28 fixed bytes, these describe augmentation: aug CRC, mix lambda, mix box.
_AUG_FIXED = 16


class ByteSplit(BaseModel):
    """Bytes per stored sample by role; they add up to the file size divided by the stored samples."""

    labels: float
    indices: float
    augmentation: float
    overhead: float

    @property
    def total(self) -> float:
        return self.labels + self.indices + self.augmentation + self.overhead


class FileSummary(BaseModel):
    path: str
    file_bytes: int
    format_version: str
    header: Header
    calibration: Calibration | None
    batches_stored: int
    batches_total: int
    samples_stored: int
    per_sample: ByteSplit
    full_f16_bytes: int
    stored_f16_bytes: int
    compression_vs_full: float
    compression_vs_stored: float
    coverage: Coverage
    verified: bool


def summarize(path: str | Path, verify: bool = False) -> FileSummary:
    with LpqlReader(path) as r:
        h = r.header
        if verify:
            r.verify()
        labels = indices = 0
        samples = 0
        for bid in r.batch_ids:
            s = r.sizes(int(bid))
            labels += s.values
            indices += s.indices
            samples += r.samples(int(bid))
        aug = _AUG_FIXED * len(r.batch_ids)
        overhead = r.size - labels - indices - aug
        c = h.num_classes
        full = h.relabel.epochs * h.images.count * c * 2
        stored = samples * c * 2
        return FileSummary(
            path=str(r.path),
            file_bytes=r.size,
            format_version=f"1.{r.minor}",
            header=h,
            calibration=r.calibration,
            batches_stored=len(r.batch_ids),
            batches_total=h.relabel.total_batches,
            samples_stored=samples,
            per_sample=ByteSplit(
                labels=labels / samples,
                indices=indices / samples,
                augmentation=aug / samples,
                overhead=overhead / samples,
            ),
            full_f16_bytes=full,
            stored_f16_bytes=stored,
            compression_vs_full=full / r.size,
            compression_vs_stored=stored / r.size,
            coverage=coverage(r),
            verified=verify,
        )


@dataclass(frozen=True)
class Overhead:
    """The bytes a label file spends besides its label values and class indices: ``fixed`` once (preamble, header,
    calibration, index count, footer), and ``per_view`` for each stored view (its batch's chunk frame, index entry,
    fixed fields and augmentation, shared by the batch's views)."""

    fixed: int
    per_view: float


def overhead(reader: LpqlReader) -> Overhead:
    """What ``reader``'s file spends besides labels (`Overhead`); a file of the same header and batch size pruned
    or re-coded spends about as much."""
    batch_bytes = per_batch = views = 0
    for bid in reader.batch_ids:
        s = reader.sizes(int(bid))
        batch_bytes += FRAME.size + INDEX_ENTRY.itemsize + s.fixed + s.indices + s.values
        per_batch += FRAME.size + INDEX_ENTRY.itemsize + s.fixed
        views += reader.samples(int(bid))
    return Overhead(fixed=reader.size - batch_bytes, per_view=per_batch / max(views, 1))
