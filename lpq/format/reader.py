"""Memory-mapped `.lpql` reader: validates the file in the order spec/lpql-v1.md section 7 gives.

Opening reads only the preamble, footer, index, header and calibration; ``read(batch_id)`` finds one batch
through the index and decodes it alone, checking its CRC first, so a corrupt chunk is an error and never a
label. Sizes are checked against the file before anything is allocated.

    with LpqlReader("labels.lpql") as r:
        rec = r.read(r.batch_ids[0])      # rec.values (B, k) float32, rec.indices (B, k) int64 | None
"""

from __future__ import annotations

import json
import mmap
import struct
from pathlib import Path
from typing import TypeVar

import numpy as np
import zstandard
from pydantic import BaseModel, ValidationError

from lpq.format.errors import LpqlError
from lpq.format.header import FORMAT_MAJOR, Calibration, Header
from lpq.format.layout import (
    BASE,
    BATCH_FIXED,
    BTCH,
    BTCS,
    CALB,
    CALZ,
    END_MAGIC,
    FOOTER,
    FRAME,
    HEAD,
    INDEX_ENTRY,
    INDX,
    MAGIC,
    MAX_HEADER_BYTES,
    PREAMBLE,
    Basis,
    BatchCodec,
    BatchRecord,
    SectionSizes,
    crc32,
    frame_crc_ok,
    is_ancillary,
)
from lpq.format.rng import CropSpec, SampleAugment, epoch_order, sample_augment

_KNOWN = {HEAD, BASE, BTCH, BTCS, CALB, CALZ}
M = TypeVar("M", bound=BaseModel)
_EPOCH_CACHE = 8


class LpqlReader:
    """A `.lpql` label file, memory-mapped and checked (spec/lpql-v1.md section 7) on open: ``header``,
    ``calibration``, ``batch_ids``, and ``read(batch_id)`` for one stored batch's labels (values, class indices,
    mix draw). Use it as a context manager.

        with LpqlReader("labels.lpql") as r:
            rec = r.read(int(r.batch_ids[0]))  # rec.values (B, k), rec.indices (B, k) or None
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self._fh = open(self.path, "rb")  # noqa: SIM115 - closed by close()
        except OSError as e:
            raise LpqlError("lpql-unreadable", f"cannot open {self.path}: {e.strerror}") from None
        self._mm: mmap.mmap | None = None
        self._epochs: dict[int, np.ndarray] = {}
        try:
            self._open()
        except BaseException:
            self.close()
            raise

    def _open(self) -> None:
        size = self.path.stat().st_size
        self.size = size
        if size == 0:
            raise LpqlError("lpql-bad-magic", f"{self.path} is empty, not a .lpql file")
        self._mm = mmap.mmap(self._fh.fileno(), 0, access=mmap.ACCESS_READ)
        mm = self._mm
        if mm[: min(size, 8)] != MAGIC[: min(size, 8)]:
            raise LpqlError("lpql-bad-magic", f"{self.path} is not a .lpql file (wrong signature)")
        if size < PREAMBLE.size + FRAME.size + FOOTER.size:
            raise LpqlError("lpql-truncated", f"{self.path} is cut short ({size} bytes)")
        _, major, minor, flags = PREAMBLE.unpack_from(mm, 0)
        if major != FORMAT_MAJOR:
            raise LpqlError(
                "lpql-unsupported-version",
                f"{self.path} is .lpql version {major}.{minor}; this lpq reads major version {FORMAT_MAJOR}",
                "upgrade lpq",
            )
        if flags != 0:
            raise LpqlError("lpql-reserved-bits", f"{self.path} sets reserved preamble flags {flags:#x}")
        self.minor = minor

        index_offset, reserved, crc, end = FOOTER.unpack_from(mm, size - FOOTER.size)
        if end != END_MAGIC:
            raise LpqlError(
                "lpql-truncated",
                f"{self.path} has no footer: it is cut short or was never finished",
                "an interrupted lpq relabel continues with --resume",
            )
        if crc32(struct.pack("<QI", index_offset, reserved)) != crc:
            raise LpqlError("lpql-footer-checksum", f"{self.path}: footer checksum mismatch (file corrupt)")
        if reserved != 0:
            raise LpqlError("lpql-reserved-bits", f"{self.path} sets reserved footer bits")
        index_end = size - FOOTER.size
        ctype, length, payload = self._frame(index_offset, index_end, "index")
        if ctype != INDX or index_offset + FRAME.size + length != index_end:
            raise LpqlError("lpql-bad-index", f"{self.path}: the footer does not point at the index chunk")
        (count,) = struct.unpack_from("<I", payload, 0) if length >= 4 else (None,)
        if count is None or length != 4 + count * INDEX_ENTRY.itemsize:
            raise LpqlError("lpql-bad-index", f"{self.path}: index length does not match its entry count")
        entries = np.frombuffer(payload, INDEX_ENTRY, count, 4)
        self._check_tiling(entries, index_offset)

        types = entries["type"]
        for t in set(types.tolist()):
            if t not in _KNOWN and not is_ancillary(t):
                raise LpqlError(
                    "lpql-unknown-chunk", f"{self.path} has critical chunk type {t!r} this lpq does not know"
                )
        if count == 0 or types[0] != HEAD:
            raise LpqlError("lpql-bad-index", f"{self.path}: the first chunk is not the header")
        self.header: Header = self._json_chunk(entries[0], Header, "header")
        self._codec = BatchCodec(self.header)  # checks the header's sizes against the format's limits first
        self.basis = self._basis(entries)
        calb = entries[(types == CALB) | (types == CALZ)]
        self.calibration: Calibration | None = (
            self._json_chunk(calb[0], Calibration, "calibration", compressed=calb[0]["type"] == CALZ)
            if len(calb)
            else None
        )

        if np.any(types == (BTCH if self._codec.stored else BTCS)):
            raise LpqlError("lpql-bad-index", f"{self.path}: batch chunks of the other kind than augment.stored says")
        batches = entries[types == self._codec.chunk_type]
        ids = batches["id"].astype(np.int64)
        if len(ids) and np.any(np.diff(ids) <= 0):
            raise LpqlError("lpql-bad-index", f"{self.path}: batch ids are not strictly increasing")
        if not np.array_equal(ids, np.asarray(self.header.prune.kept, np.int64)):
            raise LpqlError("lpql-bad-index", f"{self.path}: stored batches differ from the header's kept list")
        self.batch_ids = ids
        # Plain ints: locating a batch is one dict lookup, with no numpy scalar in the way.
        self._where = {int(bid): (int(o), int(n)) for bid, o, n in zip(ids, batches["offset"], batches["length"])}
        self.crop_spec = CropSpec.of(self.header.augment)

    def _basis(self, entries: np.ndarray) -> Basis | None:
        """The BASE chunk (1.6): present exactly for scheme basis, right after the header, of the header's size."""
        q, types = self.header.quant, entries["type"]
        if q.scheme != "basis":
            if np.any(types == BASE):
                raise LpqlError("lpql-bad-basis", f"{self.path} holds a basis for {q.name} labels")
            return None
        if len(types) < 2 or types[1] != BASE or np.count_nonzero(types == BASE) != 1:
            raise LpqlError("lpql-bad-basis", f"{self.path}: basis labels without one BASE chunk after the header")
        _, _, payload = self._frame(int(entries[1]["offset"]), self.size, "basis")
        try:
            return Basis.of_payload(payload, self.header.num_classes, q.rank or 0)
        except LpqlError as e:
            raise LpqlError(e.ref, f"{self.path}: {e.message}") from None

    def _check_tiling(self, entries: np.ndarray, index_offset: int) -> None:
        """Chunks must cover [16, index_offset) exactly, in order: no byte of the file escapes a checksum."""
        offsets = entries["offset"].astype(np.int64)
        ends = offsets + FRAME.size + entries["length"].astype(np.int64)
        starts = np.concatenate([[PREAMBLE.size], ends[:-1]]) if len(entries) else np.array([], np.int64)
        if not np.array_equal(offsets, starts) or (len(ends) and ends[-1] != index_offset):
            raise LpqlError("lpql-bad-index", f"{self.path}: index entries do not tile the file")

    def _frame(self, offset: int, limit: int, what: str) -> tuple[bytes, int, bytes]:
        assert self._mm is not None
        if offset < PREAMBLE.size or offset + FRAME.size > limit:
            raise LpqlError("lpql-bad-offset", f"{self.path}: the {what} offset {offset} lies outside the file")
        ctype, length, crc = FRAME.unpack_from(self._mm, offset)
        if offset + FRAME.size + length > limit:
            raise LpqlError("lpql-bad-length", f"{self.path}: the {what} chunk's length runs past the end of the file")
        payload = self._mm[offset + FRAME.size : offset + FRAME.size + length]
        if not frame_crc_ok(ctype, length, crc, payload):
            raise LpqlError("lpql-chunk-checksum", f"{self.path}: the {what} chunk at byte {offset} fails its checksum")
        return ctype, length, payload

    def _json_chunk(self, entry: np.void, model: type[M], what: str, compressed: bool = False) -> M:
        if int(entry["length"]) > MAX_HEADER_BYTES:
            raise LpqlError("lpql-header-too-large", f"{self.path}: the {what} is over {MAX_HEADER_BYTES} bytes")
        _, _, payload = self._frame(int(entry["offset"]), self.size, what)
        if compressed:  # calz (1.1): one zstd frame, its content size declared and under the header cap
            try:
                declared = zstandard.frame_content_size(payload)
                if declared < 0 or declared > MAX_HEADER_BYTES:
                    size = "no content size" if declared < 0 else f"{declared} bytes"
                    raise LpqlError("lpql-header-too-large", f"{self.path}: the {what} declares {size}")
                payload = zstandard.ZstdDecompressor().decompress(payload, max_output_size=MAX_HEADER_BYTES)
            except zstandard.ZstdError as e:
                raise LpqlError("lpql-bad-header", f"{self.path}: the {what} is not a zstd frame ({e})") from None
        try:
            return model.model_validate(json.loads(payload.decode("utf-8")))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise LpqlError("lpql-bad-header", f"{self.path}: the {what} is not valid JSON ({e})") from None
        except ValidationError as e:
            first = e.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or what
            raise LpqlError("lpql-bad-header", f"{self.path}: {what} field {where}: {first['msg']}") from None

    def _location(self, batch_id: int) -> tuple[int, int]:
        """(offset, payload length) of a stored batch's chunk."""
        where = self._where.get(int(batch_id))
        if where is None:
            raise LpqlError("lpql-no-batch", f"{self.path} does not store batch {batch_id}")
        return where

    def payload(self, batch_id: int) -> bytes:
        """The batch chunk's payload, CRC checked: what a writer for the same header can copy as is."""
        offset, indexed_length = self._location(batch_id)
        ctype, length, payload = self._frame(offset, self.size, f"batch {batch_id}")
        if ctype != self._codec.chunk_type or length != indexed_length:
            raise LpqlError("lpql-bad-index", f"{self.path}: index entry of batch {batch_id} does not match its chunk")
        return payload

    def sizes(self, batch_id: int) -> SectionSizes:
        """Section sizes of a stored batch, without checksum or decompression (for summaries)."""
        offset, length = self._location(batch_id)
        start = offset + FRAME.size
        return self._codec.sizes(self._mm[start : start + length])

    def samples(self, batch_id: int) -> int:
        """The sample count of a stored batch, from its fixed fields alone (for summaries)."""
        offset, _ = self._location(batch_id)
        start = offset + FRAME.size
        return self._codec.size_of(self._mm[start : start + BATCH_FIXED.size])

    def read(self, batch_id: int) -> BatchRecord:
        return self._codec.decode(batch_id, self.payload(batch_id))

    def image_indices(self, rec: BatchRecord) -> np.ndarray:
        """Positions in the image set of the batch's samples (B,) int64: stored, or from the derived epoch
        shuffle."""
        if rec.stored is not None:
            return rec.stored.image_indices
        order = self._epochs.get(rec.epoch)
        if order is None:
            r = self.header.relabel
            order = epoch_order(r.seed, rec.epoch, self.header.images.count)
            if len(self._epochs) >= _EPOCH_CACHE:
                self._epochs.pop(next(iter(self._epochs)))
            self._epochs[rec.epoch] = order
        start = rec.batch * self.header.relabel.batch_size
        return order[start : start + rec.size]

    def augment(self, rec: BatchRecord, image_hw: np.ndarray) -> SampleAugment:
        """Crops and flips of the batch for source sizes image_hw (B, 2): stored (and inside those sizes), or
        derived and checked against the file."""
        if rec.stored is not None:
            a = rec.stored.augment
            if np.any(a.top + a.height > image_hw[:, 0]) or np.any(a.left + a.width > image_hw[:, 1]):
                raise LpqlError(
                    "lpql-aug-mismatch",
                    f"batch {rec.epoch}:{rec.batch}: a stored crop lies outside its image",
                    "the images differ from those the labels were made for",
                )
            return a
        aug = sample_augment(self.header.relabel.seed, rec.epoch, rec.batch, image_hw, self.crop_spec)
        if aug.crc32() != rec.aug_crc:
            raise LpqlError(
                "lpql-aug-mismatch",
                f"batch {rec.epoch}:{rec.batch}: derived augmentation differs from the one labelled",
                "the images' sizes differ from those relabelled, or this platform's exp/log round differently",
            )
        return aug

    def verify(self) -> int:
        """Check every chunk's checksum and decode every batch; returns the number of batches checked."""
        for bid in self.batch_ids:
            self.read(int(bid))
        return len(self.batch_ids)

    def close(self) -> None:
        if self._mm is not None:
            self._mm.close()
            self._mm = None
        self._fh.close()

    def __enter__(self) -> LpqlReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
