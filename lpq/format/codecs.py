"""Label value and class-index codecs, registered by id (spec/lpql-v1.md section 5).

A codec turns a (B, k) array into the raw bytes of one chunk section and back. Indices, and values under the
1.0 ids, are laid out rank-major, (k, B): column r holds every sample's r-th largest value, so constant columns
(the top-1 of a relative code is always 0) cost zstd almost nothing. The `-by-sample` value ids (1.2) store
(B, k) as it is, which decodes without a transpose: writers use them for full labels, whose columns are
classes rather than ranks, and for long top-k rows, which compress better so. Adding an encoding means adding
a codec here and an id to `header.ValueCodecId`, not rewriting the container.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from lpq.format.errors import LpqlError
from lpq.format.header import IndexCodec, ValueCodec, split_by_table


def pack_bits(values: np.ndarray, bits: int) -> bytes:
    """Unsigned integers as a little-endian bit stream: value i occupies stream bits [i*bits, (i+1)*bits)."""
    flat = values.reshape(-1).astype(np.uint64)
    if bits == 8:
        return flat.astype(np.uint8).tobytes()
    planes = ((flat[:, None] >> np.arange(bits, dtype=np.uint64)) & np.uint64(1)).astype(np.uint8)
    return np.packbits(planes.reshape(-1), bitorder="little").tobytes()


def _as_rows(flat: np.ndarray, rows: int, k: int, by_sample: bool) -> np.ndarray:
    """The (rows, k) label matrix over a stream of rows * k values: a view, whichever order they are stored in."""
    return flat.reshape(rows, k) if by_sample else flat.reshape(k, rows).T


def unpack(data: bytes, bits: int, rows: int, k: int, by_sample: bool = False) -> np.ndarray:
    """A stream of b-bit values, rank-major (k, rows) or sample-major, read into sample-major order: (rows, k)."""
    count = rows * k
    if bits == 8:
        return _as_rows(np.frombuffer(data, np.uint8, count), rows, k, by_sample)
    if bits == 4:  # two codes a byte, low nibble first: splitting nibbles beats a general gather
        packed = np.frombuffer(data, np.uint8, packed_size(count, 4))
        codes = np.empty(2 * len(packed), np.uint8)
        np.bitwise_and(packed, 15, out=codes[0::2])
        np.right_shift(packed, 4, out=codes[1::2])
        return _as_rows(codes[:count], rows, k, by_sample)
    if count == 0:
        return np.zeros((rows, k), np.uint32)
    byte, shift, dtype = _bit_positions(count, bits, rows, by_sample)
    need = packed_size(count, bits)
    buf = np.zeros(need + 8, np.uint8)
    buf[:need] = np.frombuffer(data, np.uint8, need)
    # One word starting at every byte, copied out of an unaligned view into an aligned array first: numpy
    # gathers from unaligned memory on a slow path, and the copy costs less than the difference.
    windows = np.ascontiguousarray(np.ndarray((need,), dtype=dtype, buffer=buf.data, strides=(1,)))
    words = windows[byte]
    words >>= shift
    if dtype.itemsize == 8:
        words |= np.where(shift > 0, buf[byte + 8].astype(dtype) << (dtype.type(64) - shift), dtype.type(0))
    words &= dtype.type((1 << bits) - 1)
    return words.reshape(rows, k)


@functools.lru_cache(maxsize=64)
def _bit_positions(count: int, bits: int, rows: int, by_sample: bool) -> tuple[np.ndarray, np.ndarray, np.dtype]:
    """Start byte and bit shift of every value of a stream, in sample-major order.
    A 32-bit window holds any value of <= 25 bits."""
    dtype = np.dtype("<u8" if bits > 25 else "<u4")
    order = np.arange(count, dtype=np.uint64)
    if not by_sample:
        order = np.ascontiguousarray(order.reshape(count // rows, rows).T).reshape(-1)
    start = order * np.uint64(bits)
    byte = (start >> np.uint64(3)).astype(np.intp)
    shift = (start & np.uint64(7)).astype(dtype)
    byte.flags.writeable = False
    shift.flags.writeable = False
    return byte, shift, dtype


def packed_size(count: int, bits: int) -> int:
    return (count * bits + 7) // 8


class ValueEncoder(Protocol):
    def encode(self, values: np.ndarray) -> bytes: ...
    def decode(self, data: bytes, rows: int, k: int) -> np.ndarray: ...
    def size(self, rows: int, k: int) -> int: ...


@dataclass(frozen=True)
class FloatCodec:
    """Raw IEEE floats, little-endian, rank-major unless ``by_sample``."""

    dtype: str
    by_sample: bool

    def encode(self, values: np.ndarray) -> bytes:
        out = (values if self.by_sample else values.T).astype(self.dtype)
        if not np.all(np.isfinite(out)):
            raise LpqlError("lpql-value-range", f"label values do not fit {np.dtype(self.dtype).name}")
        return out.tobytes()

    def decode(self, data: bytes, rows: int, k: int) -> np.ndarray:
        flat = np.frombuffer(data, self.dtype, rows * k)
        return _as_rows(flat, rows, k, self.by_sample).astype(np.float32, order="C")

    def size(self, rows: int, k: int) -> int:
        return rows * k * np.dtype(self.dtype).itemsize


@dataclass(frozen=True)
class IntCodec:
    """b-bit codes under a per-row affine map: value = hi - code * scale, in float32 arithmetic.

    Row parameters precede the codes: scale as float16 (B), then hi as float16 (B) unless ``relative``,
    where hi is 0 and decoded logits are relative to the row maximum. scale is (hi - lo) / (2**b - 1),
    rounded up to float16 so that every code fits; b = 4 packs two codes a byte, low nibble first.
    """

    bits: int
    relative: bool
    by_sample: bool

    def _row_bytes(self, rows: int) -> int:
        return rows * 2 * (1 if self.relative else 2)

    def size(self, rows: int, k: int) -> int:
        return self._row_bytes(rows) + packed_size(rows * k, 8 if self.bits == 8 else self.bits)

    def encode(self, values: np.ndarray) -> bytes:
        levels = (1 << self.bits) - 1
        v = values.astype(np.float32)
        hi = np.zeros(v.shape[0], np.float16) if self.relative else _round_f16(v.max(axis=1), up=True)
        hi32 = hi.astype(np.float32)
        span = (hi32 - v.min(axis=1)) if not self.relative else (v.max(axis=1) - v.min(axis=1))
        scale = _round_f16(span / levels, up=True)
        if not np.all(np.isfinite(scale)) or not np.all(np.isfinite(hi)):
            raise LpqlError("lpql-value-range", "label values are too large for the float16 row parameters")
        top = v.max(axis=1, keepdims=True) if self.relative else hi32[:, None]
        s = scale.astype(np.float32)[:, None]
        with np.errstate(divide="ignore", invalid="ignore"):
            codes = np.where(s > 0, np.rint((top - v) / s), 0)
        codes = np.clip(codes, 0, levels).astype(np.uint8)
        codes = (codes if self.by_sample else codes.T).reshape(-1)
        parts = [scale.astype("<f2").tobytes()]
        if not self.relative:
            parts.append(hi.astype("<f2").tobytes())
        parts.append(codes.tobytes() if self.bits == 8 else pack_bits(codes, self.bits))
        return b"".join(parts)

    def decode(self, data: bytes, rows: int, k: int) -> np.ndarray:
        neg_scale = np.negative(np.frombuffer(data, "<f2", rows, 0), dtype=np.float32)
        pos = rows * (2 if self.relative else 4)
        codes = unpack(memoryview(data)[pos:], self.bits, rows, k, self.by_sample)
        # hi + code * -scale equals hi - code * scale (a zero may come out as -0.0). The cast to float32 is
        # also the pass into sample-major order (a transpose unless the codes are stored by sample); numpy
        # multiplies a uint8 by a float32 array through a slower mixed-type loop, so cast first.
        out = codes.astype(np.float32, order="C")
        out *= neg_scale[:, None]
        if not self.relative:
            out += np.frombuffer(data, "<f2", rows, rows * 2).astype(np.float32)[:, None]
        return out


def _round_f16(x: np.ndarray, up: bool) -> np.ndarray:
    h = x.astype(np.float16)
    if up:
        low = h.astype(np.float32) < x
        h = np.where(low, np.nextafter(h, np.float16(np.inf)), h)
    return h.astype(np.float16)


# Value encodings by kind (a header's values.id is the kind, plus "-by-sample" for the layout): a new encoding is
# an entry here and an id in the header's ValueCodecId, not a branch.
VALUE_CODECS: dict[str, Callable[[ValueCodec], ValueEncoder]] = {
    "f32": lambda spec: FloatCodec("<f4", spec.by_sample),
    "f16": lambda spec: FloatCodec("<f2", spec.by_sample),
    "i8": lambda spec: IntCodec(bits=8, relative=spec.relative, by_sample=spec.by_sample),
    "i4": lambda spec: IntCodec(bits=4, relative=spec.relative, by_sample=spec.by_sample),
}


def value_codec(spec: ValueCodec) -> ValueEncoder:
    return VALUE_CODECS[spec.kind](spec)


def _check_indices(idx: np.ndarray, num_classes: int) -> None:
    if idx.size and int(idx.max()) >= num_classes:
        raise LpqlError("lpql-bad-chunk", f"a stored class index is >= num_classes ({num_classes})")


@dataclass(frozen=True)
class BitpackIndices:
    """Class indices of the top-k, rank-major, each in ``bits`` bits."""

    bits: int
    num_classes: int

    def encode(self, indices: np.ndarray) -> bytes:
        return pack_bits(indices.T, self.bits)

    def decode(self, data: bytes, rows: int, k: int) -> np.ndarray:
        idx = unpack(data, self.bits, rows, k)
        _check_indices(idx, self.num_classes)
        return idx.astype(np.int64, order="C")

    def size(self, rows: int, k: int) -> int:
        return packed_size(rows * k, self.bits)


@dataclass(frozen=True)
class SplitIndices:
    """1.3: class indices of 9 to 16 bits, sample-major: every index's low byte, then the high ``bits - 8`` bits of
    every index as a bit stream. Where those fill whole bytes (1, 2, 4 or 8 bits), one table lookup per byte
    decodes them; numpy has no fast gather of bit fields that straddle bytes."""

    bits: int
    num_classes: int

    def encode(self, indices: np.ndarray) -> bytes:
        flat = indices.reshape(-1).astype(np.uint32)
        return (flat & 255).astype(np.uint8).tobytes() + pack_bits(flat >> 8, self.bits - 8)

    def decode(self, data: bytes, rows: int, k: int) -> np.ndarray:
        n, high = rows * k, self.bits - 8
        if split_by_table(self.bits):
            packed = np.frombuffer(data, np.uint8, packed_size(n, high), n)
            idx = np.take(_high_table(high), packed, axis=0).reshape(-1)[:n]
        else:
            idx = unpack(memoryview(data)[n:], high, n, 1, by_sample=True).reshape(-1).astype(np.uint16) << 8
        idx |= np.frombuffer(data, np.uint8, n)
        _check_indices(idx, self.num_classes)
        return idx.astype(np.int64).reshape(rows, k)

    def size(self, rows: int, k: int) -> int:
        return rows * k + packed_size(rows * k, self.bits - 8)


@functools.lru_cache(maxsize=4)
def _high_table(high: int) -> np.ndarray:
    """(256, 8 // high) uint16: the high parts one byte of the stream holds, already shifted past the low byte."""
    per_byte = 8 // high
    parts = (np.arange(256)[:, None] >> (high * np.arange(per_byte))) & ((1 << high) - 1)
    table = (parts << 8).astype(np.uint16)
    table.flags.writeable = False
    return table


INDEX_CODECS: dict[str, type[BitpackIndices | SplitIndices]] = {"bitpack": BitpackIndices, "split": SplitIndices}


def index_codec(spec: IndexCodec, num_classes: int) -> BitpackIndices | SplitIndices:
    return INDEX_CODECS[spec.id](spec.bits, num_classes)
