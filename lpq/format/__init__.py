"""The `.lpql` label container: spec'd bytes (spec/lpql-v1.md), a streaming writer and a mmap reader.

Imports neither torch nor typer: reading and writing label files needs numpy, zstandard, pydantic (the header's
validated schema) and isal (ISA-L's CRC-32, ten times zlib's on the checksums every read verifies), nothing else of
lpq's dependencies. The spec (spec/lpql-v1.md) is the contract for readers in other languages.
"""

from lpq.format.errors import LpqlError
from lpq.format.header import (
    Augment,
    Calibration,
    Header,
    ImageSet,
    IndexCodec,
    LogitStats,
    Prune,
    Quant,
    Relabel,
    ScheduleKind,
    StudentTemp,
    Teacher,
    TempSchedule,
    ValueCodec,
    index_bits,
)
from lpq.format.inputs import InputSpec
from lpq.format.layout import Basis, BatchRecord, SectionSizes, StoredAugment
from lpq.format.reader import LpqlReader
from lpq.format.writer import LpqlWriter, partial_path

__all__ = [
    "Augment",
    "Basis",
    "BatchRecord",
    "Calibration",
    "Header",
    "ImageSet",
    "IndexCodec",
    "InputSpec",
    "LogitStats",
    "LpqlError",
    "LpqlReader",
    "LpqlWriter",
    "Prune",
    "Quant",
    "Relabel",
    "ScheduleKind",
    "SectionSizes",
    "StoredAugment",
    "StudentTemp",
    "Teacher",
    "TempSchedule",
    "ValueCodec",
    "index_bits",
    "partial_path",
]
