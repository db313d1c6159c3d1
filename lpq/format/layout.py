"""Byte layout of `.lpql` v1: preamble, chunk frames, batch payloads, index and footer (spec sections 2-5).

Everything is little-endian. Offsets are absolute from the start of the file.

    preamble  16 B   magic(8) major u16 minor u16 flags u32
    chunk*           type(4) length u32 crc32 u32 payload(length)    -- HEAD first, then BTCH..., calb
    INDX chunk       count u32, count x (type(4) id u32 offset u64 length u32)
    footer    24 B   index_offset u64 reserved u32 crc32 u32 end_magic(8)
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

import numpy as np
import zstandard

from lpq.format.codecs import index_codec, value_codec
from lpq.format.errors import LpqlError
from lpq.format.header import Header

MAGIC = b"\x89LPQL\r\n\x1a"
END_MAGIC = b"\x89LPQEND\n"
PREAMBLE = struct.Struct("<8sHHI")
FRAME = struct.Struct("<4sII")
FOOTER = struct.Struct("<QII8s")
INDEX_ENTRY = np.dtype([("type", "S4"), ("id", "<u4"), ("offset", "<u8"), ("length", "<u4")])
BATCH_FIXED = struct.Struct("<IIIIf4H")
SECTION = struct.Struct("<BI")

HEAD, BTCH, INDX, CALB = b"HEAD", b"BTCH", b"INDX", b"calb"
MAX_HEADER_BYTES = 16 << 20
RAW, ZSTD = 0, 1


def is_ancillary(chunk_type: bytes) -> bool:
    """PNG's rule: bit 5 of the first type byte set (a lowercase letter) means a reader may skip the chunk."""
    return bool(chunk_type[0] & 0x20)


def frame(chunk_type: bytes, payload: bytes) -> bytes:
    head = struct.pack("<4sI", chunk_type, len(payload))
    crc = zlib.crc32(payload, zlib.crc32(head))
    return FRAME.pack(chunk_type, len(payload), crc) + payload


def frame_crc_ok(chunk_type: bytes, length: int, crc: int, payload: memoryview | bytes) -> bool:
    return zlib.crc32(payload, zlib.crc32(struct.pack("<4sI", chunk_type, length))) == crc


def footer(index_offset: int) -> bytes:
    body = struct.pack("<QI", index_offset, 0)
    return FOOTER.pack(index_offset, 0, zlib.crc32(body), END_MAGIC)


@dataclass(frozen=True)
class BatchRecord:
    """One stored batch: its place in the run, the batch-level mix draw, and the labels (B, k)."""

    epoch: int
    batch: int
    aug_crc: int
    mix_lambda: float
    mix_box: tuple[int, int, int, int]  # top, left, bottom, right of the CutMix box; zeros otherwise
    values: np.ndarray  # (B, k) float32: logits (none/mr) or probabilities (ms), descending for top-k
    indices: np.ndarray | None  # (B, k) class ids of the top-k, None for scheme 'none'

    @property
    def size(self) -> int:
        return int(self.values.shape[0])


@dataclass(frozen=True)
class SectionSizes:
    """Stored bytes of one batch chunk by role, for `lpq inspect`."""

    fixed: int
    indices: int
    values: int


class BatchCodec:
    """Encodes and decodes BTCH payloads for one header (its k, codecs and class count)."""

    def __init__(self, header: Header, level: int = 9) -> None:
        q = header.quant
        self.header = header
        self.k = q.k
        self.values = value_codec(q.values)
        self.indices = index_codec(q.indices, header.num_classes) if q.indices else None
        self._cctx = zstandard.ZstdCompressor(level=level, write_content_size=True, write_checksum=False)
        self._dctx = zstandard.ZstdDecompressor()

    def encode(self, rec: BatchRecord) -> bytes:
        expect = self.header.batch_size_of(rec.epoch * self.header.relabel.batches_per_epoch + rec.batch)
        if rec.values.shape != (expect, self.k):
            raise LpqlError(
                "lpql-bad-batch", f"batch values have shape {rec.values.shape}, expected ({expect}, {self.k})"
            )
        parts = [BATCH_FIXED.pack(rec.epoch, rec.batch, rec.size, rec.aug_crc, rec.mix_lambda, *rec.mix_box)]
        if self.indices is not None:
            if rec.indices is None or rec.indices.shape != rec.values.shape:
                raise LpqlError("lpql-bad-batch", "top-k labels need class indices of the same shape as the values")
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

    def decode(self, batch_id: int, payload: memoryview) -> BatchRecord:
        (epoch, batch, size, aug_crc, lam, *box), idx_raw, val_raw = self.sections(batch_id, payload)
        indices = None if idx_raw is None or self.indices is None else self.indices.decode(idx_raw, size, self.k)
        values = self.values.decode(val_raw, size, self.k)
        return BatchRecord(epoch, batch, aug_crc, lam, (box[0], box[1], box[2], box[3]), values, indices)

    def sections(self, batch_id: int, payload: memoryview) -> tuple[tuple, bytes | None, bytes]:
        """Fixed fields, then the raw (decompressed) index and value sections, checked against the header."""
        h = self.header
        if len(payload) < BATCH_FIXED.size:
            raise LpqlError("lpql-bad-chunk", f"batch {batch_id} is shorter than its fixed fields")
        fixed = BATCH_FIXED.unpack_from(payload, 0)
        epoch, batch, size = fixed[:3]
        if epoch * h.relabel.batches_per_epoch + batch != batch_id or batch >= h.relabel.batches_per_epoch:
            raise LpqlError("lpql-bad-chunk", f"batch chunk {batch_id} says it is epoch {epoch} batch {batch}")
        if size != h.batch_size_of(batch_id):
            raise LpqlError(
                "lpql-bad-chunk", f"batch {batch_id} holds {size} samples, expected {h.batch_size_of(batch_id)}"
            )
        pos = BATCH_FIXED.size
        idx_raw = None
        if self.indices is not None:
            idx_raw, pos = self._read_section(payload, pos, self.indices.size(size, self.k), batch_id)
        val_raw, pos = self._read_section(payload, pos, self.values.size(size, self.k), batch_id)
        if pos != len(payload):
            raise LpqlError("lpql-bad-chunk", f"batch {batch_id} has {len(payload) - pos} trailing bytes")
        return fixed, idx_raw, val_raw

    def sizes(self, payload: bytes) -> SectionSizes:
        """Stored bytes by role, read from the section headers alone (nothing is decompressed)."""
        pos = BATCH_FIXED.size
        lengths = []
        for _ in range(2 if self.indices is not None else 1):
            if pos + SECTION.size > len(payload):
                raise LpqlError("lpql-bad-chunk", "a batch ends inside a section header")
            _, length = SECTION.unpack_from(payload, pos)
            lengths.append(SECTION.size + length)
            pos += SECTION.size + length
        return SectionSizes(BATCH_FIXED.size, lengths[0] if len(lengths) == 2 else 0, lengths[-1])

    def _read_section(self, payload: memoryview, pos: int, expect: int, batch_id: int) -> tuple[bytes, int]:
        if pos + SECTION.size > len(payload):
            raise LpqlError("lpql-bad-chunk", f"batch {batch_id} ends inside a section header")
        codec, length = SECTION.unpack_from(payload, pos)
        start, end = pos + SECTION.size, pos + SECTION.size + length
        if end > len(payload):
            raise LpqlError("lpql-bad-chunk", f"batch {batch_id} has a section running past its chunk")
        data = payload[start:end]
        if codec == RAW:
            raw = bytes(data)
        elif codec == ZSTD:
            try:
                declared = zstandard.frame_content_size(data)
            except zstandard.ZstdError as e:
                raise LpqlError("lpql-bad-chunk", f"batch {batch_id}: bad zstd frame ({e})") from None
            if declared != expect:
                raise LpqlError(
                    "lpql-bad-chunk", f"batch {batch_id}: section declares {declared} bytes, expected {expect}"
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
