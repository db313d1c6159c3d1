"""Streaming, crash-safe `.lpql` writer.

Chunks are appended to ``NAME.partial`` as batches arrive and flushed one by one, so a killed run leaves
every finished batch on disk. ``LpqlWriter(path, header, resume=True)`` reopens that file, keeps each chunk
whose checksum holds, truncates the rest and continues; ``finish()`` appends calibration, index and footer
and only then renames the file to its final name, so a reader never sees half a file under that name.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np

from lpq.format.errors import LpqlError
from lpq.format.header import FORMAT_MAJOR, FORMAT_MINOR, Calibration, Header
from lpq.format.layout import (
    BATCH_FIXED,
    BTCH,
    CALB,
    FRAME,
    HEAD,
    INDEX_ENTRY,
    INDX,
    MAGIC,
    PREAMBLE,
    BatchCodec,
    BatchRecord,
    footer,
    frame,
    frame_crc_ok,
)


def partial_path(path: Path) -> Path:
    return path.with_name(path.name + ".partial")


class LpqlWriter:
    def __init__(self, path: Path, header: Header, *, resume: bool = False, level: int = 9) -> None:
        self.path = Path(path)
        self.partial = partial_path(self.path)
        self.header = header
        self.codec = BatchCodec(header, level)
        self._kept = set(header.prune.kept)
        self._entries: list[tuple[bytes, int, int, int]] = []  # type, id, offset, payload length
        self._head_json = header.model_dump_json().encode()
        if resume and self.partial.exists():
            self._file = open(self.partial, "r+b")  # noqa: SIM115 - lives until finish()/close()
            self._reopen()
        else:
            self._file = open(self.partial, "wb")  # noqa: SIM115
            self._file.write(PREAMBLE.pack(MAGIC, FORMAT_MAJOR, FORMAT_MINOR, 0))
            self._append(HEAD, 0, self._head_json)

    @property
    def stored(self) -> list[int]:
        """Ids of the batches already in the file, in order."""
        return [i for t, i, _, _ in self._entries if t == BTCH]

    def _reopen(self) -> None:
        f = self._file
        size = os.fstat(f.fileno()).st_size
        if f.read(8) != MAGIC:
            raise LpqlError("resume-not-lpql", f"{self.partial} is not a partial .lpql file", "delete it to start over")
        pos = PREAMBLE.size
        bpe = self.header.relabel.batches_per_epoch
        while pos + FRAME.size <= size:
            f.seek(pos)
            ctype, length, crc = FRAME.unpack(f.read(FRAME.size))
            start = pos + FRAME.size
            if start + length > size:
                break  # a chunk cut short by the interruption: drop it and everything after
            payload = f.read(length)
            if not frame_crc_ok(ctype, length, crc, payload):
                break
            if not self._entries:
                if ctype != HEAD or payload != self._head_json:
                    raise LpqlError(
                        "resume-mismatch",
                        f"{self.partial} was started with other settings",
                        "rerun with the same settings, or delete it to start over",
                    )
                self._entries.append((HEAD, 0, pos, length))
            elif ctype == BTCH and length >= BATCH_FIXED.size:
                epoch, batch = struct.unpack_from("<II", payload, 0)
                self._entries.append((BTCH, epoch * bpe + batch, pos, length))
            else:
                break
            pos = start + length
        if not self._entries:
            raise LpqlError("resume-mismatch", f"{self.partial} has no intact header", "delete it to start over")
        f.seek(pos)
        f.truncate()

    def _append(self, ctype: bytes, cid: int, payload: bytes) -> None:
        offset = self._file.tell()
        self._file.write(frame(ctype, payload))
        self._entries.append((ctype, cid, offset, len(payload)))

    def add(self, rec: BatchRecord) -> None:
        bid = rec.epoch * self.header.relabel.batches_per_epoch + rec.batch
        if bid not in self._kept:
            raise LpqlError("lpql-bad-batch", f"batch {bid} is not in the header's kept list")
        stored = self.stored
        if stored and bid <= stored[-1]:
            raise LpqlError("lpql-bad-batch", f"batch {bid} written after batch {stored[-1]}: ids must increase")
        self._append(BTCH, bid, self.codec.encode(rec))
        self._file.flush()

    def finish(self, calibration: Calibration | None = None) -> Path:
        missing = self._kept.difference(self.stored)
        if missing:
            raise LpqlError("lpql-incomplete", f"{len(missing)} kept batches were never written (first: {min(missing)})")
        if calibration is not None:
            self._append(CALB, 0, calibration.model_dump_json().encode())
        index = np.array([(t, i, o, n) for t, i, o, n in self._entries], dtype=INDEX_ENTRY)
        index_offset = self._file.tell()
        self._file.write(frame(INDX, struct.pack("<I", len(index)) + index.tobytes()))
        self._file.write(footer(index_offset))
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        os.replace(self.partial, self.path)
        return self.path

    def close(self) -> None:
        """Stop writing without finishing: the partial file stays for a later resume."""
        if not self._file.closed:
            self._file.close()

    def __enter__(self) -> LpqlWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
