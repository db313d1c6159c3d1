"""Byte layout of `.lpql` v1: preamble, chunk frames, batch payloads, index and footer (spec sections 2-5).

Everything is little-endian. Offsets are absolute from the start of the file.

    preamble  16 B   magic(8) major u16 minor u16 flags u32
    chunk*           type(4) length u32 crc32 u32 payload(length)    -- HEAD first, then BTCH..., calb
    INDX chunk       count u32, count x (type(4) id u32 offset u64 length u32)
    footer    24 B   index_offset u64 reserved u32 crc32 u32 end_magic(8)
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np
import zstandard

# ISA-L's CRC-32 is zlib's (same polynomial, same values) at about ten times the speed of the system zlib, and
# every byte read or written passes through it.
from isal.isal_zlib import crc32

from lpq.format.codecs import index_codec, value_codec
from lpq.format.errors import LpqlError
from lpq.format.header import Header
from lpq.format.rng import SampleAugment

MAGIC = b"\x89LPQL\r\n\x1a"
END_MAGIC = b"\x89LPQEND\n"
PREAMBLE = struct.Struct("<8sHHI")
FRAME = struct.Struct("<4sII")
FOOTER = struct.Struct("<QII8s")
INDEX_ENTRY = np.dtype([("type", "S4"), ("id", "<u4"), ("offset", "<u8"), ("length", "<u4")])
BATCH_FIXED = struct.Struct("<IIIIf4H")
SECTION = struct.Struct("<BI")

HEAD, BTCH, BTCS, INDX, CALB, CALZ, BASE = b"HEAD", b"BTCH", b"BTCS", b"INDX", b"calb", b"calz", b"BASE"
RAW, ZSTD = 0, 1
# A section's bytes: raw ones are read in place from the chunk (a view), compressed ones are decompressed.
Buffer = bytes | memoryview

# Limits on sizes a file declares, checked before anything is allocated (spec section 7): a label file from
# the internet must not be able to ask a reader for more memory than a real run needs.
MAX_HEADER_BYTES = 16 << 20  # a header or calibration JSON
MAX_IMAGES = 1 << 25  # images.count: 33.5 M (ImageNet-21K at IPC 1,000 is 21 M); an epoch order takes 16 B each
MAX_CLASSES = 1 << 20  # num_classes
MAX_BATCH_BYTES = 512 << 20  # decoded sections of one batch (full float32 labels of 21,843 classes: 6,000 samples)
MAX_BASIS_BYTES = 64 << 20  # a BASE chunk: 21,843 classes at rank 255 take 22 MB
STORED_COLUMNS = 7  # a BTCS augmentation table: image index, top, left, height, width, flip, mix partner


def is_ancillary(chunk_type: bytes) -> bool:
    """PNG's rule: bit 5 of the first type byte set (a lowercase letter) means a reader may skip the chunk."""
    return bool(chunk_type[0] & 0x20)


def frame(chunk_type: bytes, payload: bytes) -> bytes:
    head = struct.pack("<4sI", chunk_type, len(payload))
    crc = crc32(payload, crc32(head))
    return FRAME.pack(chunk_type, len(payload), crc) + payload


def frame_crc_ok(chunk_type: bytes, length: int, crc: int, payload: memoryview | bytes) -> bool:
    return crc32(payload, crc32(struct.pack("<4sI", chunk_type, length))) == crc


def footer(index_offset: int) -> bytes:
    body = struct.pack("<QI", index_offset, 0)
    return FOOTER.pack(index_offset, 0, crc32(body), END_MAGIC)


def check_limits(header: Header) -> None:
    """Refuse a header whose sizes exceed the format's limits (reader and writer alike)."""
    for what, value, limit in (
        ("images.count", header.images.count, MAX_IMAGES),
        ("num_classes", header.num_classes, MAX_CLASSES),
    ):
        if value > limit:
            raise LpqlError("lpql-over-limit", f"{what} {value:,} exceeds the format's limit of {limit:,}")
    basis = Basis.size(header.num_classes, header.quant.rank or 0)
    if header.quant.rank is not None and basis > MAX_BASIS_BYTES:
        raise LpqlError(
            "lpql-over-limit", f"a basis of {basis:,} bytes exceeds the format's limit of {MAX_BASIS_BYTES:,}"
        )


@dataclass(frozen=True)
class Basis:
    """The file's basis of the logits (1.6, BASE: scheme basis): a sample's logits are ``mean + coefficients @
    weights``, its k stored logits in place at their classes (spec section 4.1)."""

    mean: np.ndarray  # (C,) float32
    weights: np.ndarray  # (r, C) float32

    def __post_init__(self) -> None:
        c = self.mean.shape[0]
        if self.mean.ndim != 1 or self.weights.ndim != 2 or self.weights.shape[1] != c:
            raise ValueError(f"a basis is a mean (C,) and weights (r, C); got {self.mean.shape}, {self.weights.shape}")
        if not (np.isfinite(self.mean).all() and np.isfinite(self.weights).all()):
            raise ValueError("a basis holds finite numbers only")

    @property
    def rank(self) -> int:
        return int(self.weights.shape[0])

    @staticmethod
    def size(num_classes: int, rank: int) -> int:
        """Bytes of a BASE payload: float32 mean[C] and weights[r][C]."""
        return 4 * num_classes * (rank + 1)

    def first(self, rank: int) -> Basis:
        """The basis of the first ``rank`` directions (principal directions nest: a smaller fit is a prefix)."""
        return Basis(self.mean, self.weights[:rank])

    def payload(self) -> bytes:
        """The BASE payload: float32 mean[C], then float32 weights[r][C], row-major."""
        return np.concatenate([self.mean.ravel(), self.weights.ravel()]).astype("<f4").tobytes()

    @classmethod
    def of_payload(cls, payload: Buffer, num_classes: int, rank: int) -> Basis:
        """The basis a BASE payload holds for a header's C and rank (`lpql-bad-basis` where it cannot)."""
        if len(payload) != cls.size(num_classes, rank):
            raise LpqlError(
                "lpql-bad-basis", f"a BASE of {len(payload)} bytes; C = {num_classes} and rank {rank} make it "
                f"{cls.size(num_classes, rank)}",
            )  # fmt: skip
        floats = np.frombuffer(payload, "<f4").astype(np.float32)
        try:
            return cls(floats[:num_classes], floats[num_classes:].reshape(rank, num_classes))
        except ValueError as e:
            raise LpqlError("lpql-bad-basis", f"the BASE chunk: {e}") from None


@dataclass(frozen=True)
class StoredAugment:
    """A batch's augmentation as stored (1.1, BTCS): labels made elsewhere cannot derive it from a seed."""

    image_indices: np.ndarray  # (B,) int64 positions in the image set
    augment: SampleAugment  # crops and flips
    partner: np.ndarray  # (B,) int64: the sample each sample is mixed with

    def table(self) -> np.ndarray:
        """(7, B) int32: image index, top, left, height, width, flip, partner."""
        a = self.augment
        return np.stack([self.image_indices, a.top, a.left, a.height, a.width, a.flip, self.partner]).astype("<i4")

    @classmethod
    def from_table(cls, t: np.ndarray) -> StoredAugment:
        aug = SampleAugment(*(t[i].astype(np.int32) for i in range(1, 5)), t[5].astype(bool))
        return cls(t[0].astype(np.int64), aug, t[6].astype(np.int64))


@dataclass(frozen=True)
class BatchRecord:
    """One stored batch: its place in the run, the batch-level mix draw, and the labels (B, k)."""

    epoch: int
    batch: int
    aug_crc: int
    mix_lambda: float
    mix_box: tuple[int, int, int, int]  # top, left, bottom, right of the CutMix box; zeros otherwise
    values: np.ndarray  # (B, k) float32: logits (none/mr) or probabilities (ms), descending for top-k; tail: (B, k + t)
    indices: np.ndarray | None  # (B, k) class ids of the top-k, None for scheme 'none'
    stored: StoredAugment | None = None  # set in files with stored augmentation (header augment.stored)

    @property
    def size(self) -> int:
        return int(self.values.shape[0])


@dataclass(frozen=True)
class SectionSizes:
    """Stored bytes of one batch chunk by role, for `lpq inspect`."""

    fixed: int  # fixed fields, and a stored augmentation section
    indices: int
    values: int


class BatchCodec:
    """Encodes and decodes batch payloads (BTCH, or BTCS with stored augmentation) for one header."""

    def __init__(self, header: Header, level: int = 9) -> None:
        q = header.quant
        self.header = header
        self.k, self.columns = q.k, q.columns  # class indices per sample, values per sample
        self.values = value_codec(q.values)
        self.indices = index_codec(q.indices, header.num_classes) if q.indices else None
        self.stored = header.augment.stored
        self.chunk_type = BTCS if self.stored else BTCH
        check_limits(header)
        b = header.relabel.batch_size
        decoded = self.values.size(b, self.columns) + (self.indices.size(b, self.k) if self.indices else 0)
        decoded += STORED_COLUMNS * 4 * b if self.stored else 0
        if decoded > MAX_BATCH_BYTES:
            raise LpqlError(
                "lpql-over-limit",
                f"one batch decodes to {decoded:,} bytes, over the format's limit "
                f"of {MAX_BATCH_BYTES:,} ({b:,} samples x {self.columns:,} values)",
            )
        self._cctx = zstandard.ZstdCompressor(level=level, write_content_size=True, write_checksum=False)
        self._dctx = zstandard.ZstdDecompressor()

    def expected_size(self, batch_id: int, size: int) -> bool:
        """Whether a batch may hold ``size`` samples: the size rule, or 1..batch_size when stored."""
        h = self.header
        return 1 <= size <= h.relabel.batch_size if self.stored else size == h.batch_size_of(batch_id)

    def encode(self, rec: BatchRecord) -> bytes:
        bid = rec.epoch * self.header.relabel.batches_per_epoch + rec.batch
        if rec.values.shape != (rec.size, self.columns) or not self.expected_size(bid, rec.size):
            raise LpqlError(
                "lpql-bad-batch",
                f"batch {bid} values have shape {rec.values.shape}, against the header's batch size and "
                f"{self.columns} values per sample",
            )
        parts = [BATCH_FIXED.pack(rec.epoch, rec.batch, rec.size, rec.aug_crc, rec.mix_lambda, *rec.mix_box)]
        if self.stored:
            if rec.stored is None or rec.stored.image_indices.shape != (rec.size,):
                raise LpqlError("lpql-bad-batch", "a file with stored augmentation needs each batch's augmentation")
            parts.append(self._section(rec.stored.table().tobytes()))
        if self.indices is not None:
            if rec.indices is None or rec.indices.shape != (rec.size, self.k):
                raise LpqlError("lpql-bad-batch", f"top-k labels need {self.k} class indices per sample")
            if rec.indices.min() < 0 or rec.indices.max() >= self.header.num_classes:
                raise LpqlError("lpql-bad-batch", "a class index is outside [0, num_classes)")
            parts.append(self._section(self.indices.encode(rec.indices)))
        parts.append(self._section(self.values.encode(rec.values)))
        return b"".join(parts)

    def _section(self, raw: bytes) -> bytes:
        packed = self._cctx.compress(raw)
        if len(packed) < len(raw):
            return SECTION.pack(ZSTD, len(packed)) + packed
        return SECTION.pack(RAW, len(raw)) + raw

    def decode(self, batch_id: int, payload: Buffer) -> BatchRecord:
        (epoch, batch, size, aug_crc, lam, *box), aug_raw, idx_raw, val_raw = self.sections(batch_id, payload)
        indices = None if idx_raw is None or self.indices is None else self.indices.decode(idx_raw, size, self.k)
        values = self.values.decode(val_raw, size, self.columns)
        stored = None if aug_raw is None else self._stored(batch_id, aug_raw, size, aug_crc)
        return BatchRecord(epoch, batch, aug_crc, lam, (box[0], box[1], box[2], box[3]), values, indices, stored)

    def _stored(self, batch_id: int, raw: Buffer, size: int, aug_crc: int) -> StoredAugment:
        """A stored augmentation table, checked: indices in range, boxes inside known image sizes, its CRC."""
        t = np.frombuffer(raw, "<i4").reshape(STORED_COLUMNS, size)
        h = self.header.images
        bad = (
            (t[0] < 0)
            | (t[0] >= h.count)
            | (t[1] < 0)
            | (t[2] < 0)
            | (t[3] < 1)
            | (t[4] < 1)
            | ((t[5] != 0) & (t[5] != 1))
            | (t[6] < 0)
            | (t[6] >= size)
        )
        if h.height and h.width:
            bad |= (t[1] + t[3] > h.height) | (t[2] + t[4] > h.width)
        if bad.any():
            raise LpqlError(
                "lpql-bad-chunk",
                f"batch {batch_id}: stored augmentation of sample {int(np.argmax(bad))} is out of range",
            )
        stored = StoredAugment.from_table(t)
        if stored.augment.crc32() != aug_crc:
            raise LpqlError("lpql-aug-mismatch", f"batch {batch_id}: the stored augmentation fails its CRC")
        return stored

    def sections(self, batch_id: int, payload: Buffer) -> tuple[tuple, Buffer | None, Buffer | None, Buffer]:
        """Fixed fields, then the raw (decompressed) augmentation, index and value sections, checked against the
        header."""
        h = self.header
        if len(payload) < BATCH_FIXED.size:
            raise LpqlError("lpql-bad-chunk", f"batch {batch_id} is shorter than its fixed fields")
        fixed = BATCH_FIXED.unpack_from(payload, 0)
        epoch, batch, size = fixed[:3]
        if epoch * h.relabel.batches_per_epoch + batch != batch_id or batch >= h.relabel.batches_per_epoch:
            raise LpqlError("lpql-bad-chunk", f"batch chunk {batch_id} says it is epoch {epoch} batch {batch}")
        if not self.expected_size(batch_id, size):
            raise LpqlError("lpql-bad-chunk", f"batch {batch_id} holds {size} samples, against the header's batch size")
        pos = BATCH_FIXED.size
        aug_raw = idx_raw = None
        view = memoryview(payload)  # sections are read in place: slicing bytes would copy each one
        if self.stored:
            aug_raw, pos = self._read_section(view, pos, STORED_COLUMNS * 4 * size, batch_id)
        if self.indices is not None:
            idx_raw, pos = self._read_section(view, pos, self.indices.size(size, self.k), batch_id)
        val_raw, pos = self._read_section(view, pos, self.values.size(size, self.columns), batch_id)
        if pos != len(payload):
            raise LpqlError("lpql-bad-chunk", f"batch {batch_id} has {len(payload) - pos} trailing bytes")
        return fixed, aug_raw, idx_raw, val_raw

    def size_of(self, payload: bytes) -> int:
        """The sample count a batch payload declares (its fixed fields alone)."""
        return int(BATCH_FIXED.unpack_from(payload, 0)[2])

    def sizes(self, payload: bytes) -> SectionSizes:
        """Stored bytes by role, read from the section headers alone (nothing is decompressed); a stored
        augmentation section counts with the fixed fields, as augmentation."""
        pos = BATCH_FIXED.size
        lengths = []
        for _ in range((2 if self.indices is not None else 1) + self.stored):
            if pos + SECTION.size > len(payload):
                raise LpqlError("lpql-bad-chunk", "a batch ends inside a section header")
            _, length = SECTION.unpack_from(payload, pos)
            lengths.append(SECTION.size + length)
            pos += SECTION.size + length
        augmentation = lengths.pop(0) if self.stored else 0
        return SectionSizes(BATCH_FIXED.size + augmentation, lengths[0] if len(lengths) == 2 else 0, lengths[-1])

    def _read_section(self, payload: memoryview, pos: int, expect: int, batch_id: int) -> tuple[Buffer, int]:
        if pos + SECTION.size > len(payload):
            raise LpqlError("lpql-bad-chunk", f"batch {batch_id} ends inside a section header")
        codec, length = SECTION.unpack_from(payload, pos)
        start, end = pos + SECTION.size, pos + SECTION.size + length
        if end > len(payload):
            raise LpqlError("lpql-bad-chunk", f"batch {batch_id} has a section running past its chunk")
        data = payload[start:end]
        if codec == RAW:
            raw = data
        elif codec == ZSTD:
            try:
                declared = zstandard.frame_content_size(data)
            except zstandard.ZstdError as e:
                raise LpqlError("lpql-bad-chunk", f"batch {batch_id}: bad zstd frame ({e})") from None
            if declared is not None and declared > MAX_BATCH_BYTES:
                raise LpqlError("lpql-over-limit", f"batch {batch_id}: a section declares {declared:,} bytes")
            if declared != expect:
                size = "no content size" if declared is None or declared < 0 else f"{declared} bytes"
                raise LpqlError(
                    "lpql-bad-chunk", f"batch {batch_id}: a zstd section declares {size}, expected {expect}"
                )
            try:
                raw = self._dctx.decompress(data, max_output_size=expect)
            except zstandard.ZstdError as e:
                raise LpqlError("lpql-bad-chunk", f"batch {batch_id}: zstd failed ({e})") from None
        else:
            raise LpqlError("lpql-bad-chunk", f"batch {batch_id}: unknown section codec {codec}")
        if len(raw) != expect:
            raise LpqlError("lpql-bad-chunk", f"batch {batch_id}: section holds {len(raw)} bytes, expected {expect}")
        return raw, end
