"""Streaming, crash-safe `.lpql` writer.

Chunks are appended to ``NAME.partial`` as batches arrive and flushed one by one, so a killed run leaves
every finished batch on disk. ``LpqlWriter(path, header, resume=True)`` reopens that file, keeps each chunk
whose checksum holds, truncates the rest and continues; ``finish()`` appends calibration, index and footer
and only then renames the file to its final name, so a reader never sees half a file under that name.
"""

from __future__ import annotations

import contextlib
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import zstandard

from lpq.format.errors import LpqlError
from lpq.format.header import FORMAT_MAJOR, FORMAT_MINOR, Calibration, Header
from lpq.format.layout import (
    BASE,
    BATCH_FIXED,
    BTCH,
    BTCS,
    CALZ,
    FRAME,
    HEAD,
    INDEX_ENTRY,
    INDX,
    MAGIC,
    PREAMBLE,
    Basis,
    BatchCodec,
    BatchRecord,
    footer,
    frame,
    frame_crc_ok,
)
from lpq.locks import try_lock


def partial_path(path: Path) -> Path:
    return path.with_name(path.name + ".partial")


@dataclass(frozen=True)
class Entry:
    """A written chunk, as the index will list it."""

    type: bytes
    id: int
    offset: int
    length: int  # payload bytes


def scan_partial(f: BinaryIO, batches_per_epoch: int, batch_type: bytes = BTCH) -> tuple[list[Entry], int]:
    """Intact leading chunks of a partial file, and where they end.

    Stops at the first chunk that is cut short, fails its CRC, or is neither HEAD (first), BASE (second) nor a
    batch chunk of ``batch_type`` (BTCH, or BTCS for stored augmentation).
    """
    size = os.fstat(f.fileno()).st_size
    f.seek(0)
    if f.read(8) != MAGIC:
        raise LpqlError(
            "resume-not-lpql", f"{getattr(f, 'name', 'file')} is not a partial .lpql file", "delete it to start over"
        )
    entries: list[Entry] = []
    pos = PREAMBLE.size
    while pos + FRAME.size <= size:
        f.seek(pos)
        ctype, length, crc = FRAME.unpack(f.read(FRAME.size))
        start = pos + FRAME.size
        if start + length > size:
            break
        payload = f.read(length)
        if not frame_crc_ok(ctype, length, crc, payload):
            break
        if not entries and ctype == HEAD:
            entries.append(Entry(HEAD, 0, pos, length))
        elif len(entries) == 1 and ctype == BASE:
            entries.append(Entry(BASE, 0, pos, length))
        elif entries and ctype == batch_type and length >= BATCH_FIXED.size:
            epoch, batch = struct.unpack_from("<II", payload, 0)
            entries.append(Entry(batch_type, epoch * batches_per_epoch + batch, pos, length))
        else:
            break
        pos = start + length
    return entries, pos


def read_partial_batches(path: Path, header: Header) -> dict[int, bytes]:
    """Batch payloads of a partial file written for ``header`` (a torchrun rank's part), by batch id."""
    with open(path, "rb") as f:
        entries, _ = scan_partial(f, header.relabel.batches_per_epoch, BTCS if header.augment.stored else BTCH)
        out = {}
        for e in entries:
            if e.type not in (BTCH, BTCS):
                continue
            f.seek(e.offset + FRAME.size)
            out[e.id] = f.read(e.length)
        return out


def partial_basis(path: Path, header: Header) -> Basis | None:
    """The basis a partial file of scheme basis labels holds (what a resumed run must keep), or None."""
    if header.quant.scheme != "basis" or not path.exists():
        return None
    with open(path, "rb") as f:
        entries, _ = scan_partial(f, header.relabel.batches_per_epoch, BTCS if header.augment.stored else BTCH)
        if len(entries) < 2 or entries[1].type != BASE:
            return None
        f.seek(entries[1].offset + FRAME.size)
        return Basis.of_payload(f.read(entries[1].length), header.num_classes, header.quant.rank or 0)


def _basis_payload(header: Header, basis: Basis) -> bytes:
    """The BASE payload of ``basis``, which must fit the header's classes and rank."""
    if basis.mean.shape[0] != header.num_classes or basis.rank != header.quant.rank:
        raise LpqlError(
            "lpql-bad-basis",
            f"a basis of {basis.mean.shape[0]} classes and rank {basis.rank} for labels of {header.num_classes} "
            f"classes and rank {header.quant.rank}",
        )
    return basis.payload()


def _open_exclusive(partial: Path) -> BinaryIO:
    """The partial file, opened without truncating it and locked: a second writer of the same output is refused
    before it can touch the first one's bytes (writes append; the caller truncates where it resumes)."""
    f = open(partial, "a+b")  # noqa: SIM115
    if not try_lock(f):  # held by this process alone (not by forked DataLoader workers), freed at its death
        f.close()
        raise LpqlError(
            "output-busy", f"another process is writing {partial}", "wait for it to finish, or choose another -o"
        )
    return f


def _rename_no_replace(partial: Path, path: Path) -> None:
    """Give the finished file its name, never replacing a file that appeared there meanwhile (another process's
    result): a hard link fails if the name exists; filesystems without hard links fall back to a checked replace."""
    try:
        os.link(partial, path)
    except FileExistsError:
        partial.unlink(missing_ok=True)
        raise LpqlError(
            "output-exists", f"{path} appeared while this file was written (another process?)", "choose another -o"
        ) from None
    except OSError:
        if path.exists():
            raise LpqlError(
                "output-exists", f"{path} appeared while this file was written", "choose another -o"
            ) from None
        os.replace(partial, path)
        return
    partial.unlink()


class LpqlWriter:
    """Writes one `.lpql` file: the header, then each kept batch in increasing id order (``add`` a `BatchRecord`,
    or ``add_encoded`` a payload copied from a file of the same header), then ``finish`` with the optional
    calibration. It writes ``NAME.partial`` (locked against a second writer) and renames it to ``NAME`` only when
    complete, never over a file that exists; ``resume=True`` continues a partial file an interrupted writer left.

        with LpqlReader("labels.lpql") as r, LpqlWriter(Path("copy.lpql"), r.header) as w:
            for bid in r.header.prune.kept:
                w.add(r.read(bid))                 # or records of your own relabel loop, planned by lpq.method.replay
            w.finish(r.calibration)
    """

    def __init__(
        self, path: Path, header: Header, *, basis: Basis | None = None, resume: bool = False, level: int = 9
    ) -> None:
        self.path = Path(path)
        self.partial = partial_path(self.path)
        # A file says which version wrote it, also when its header was copied from an older file's (prune, quantize).
        self.header = header.model_copy(update={"format_version": f"{FORMAT_MAJOR}.{FORMAT_MINOR}"})
        self.codec = BatchCodec(self.header, level)
        self._kept = set(self.header.prune.kept)
        self._entries: list[Entry] = []
        self.stored: list[int] = []  # ids of the batches in the file, in order
        self._head_json = self.header.model_dump_json().encode()
        if (self.header.quant.scheme == "basis") != (basis is not None):
            raise LpqlError("lpql-bad-basis", "a basis is written exactly with scheme basis labels")
        # The chunks before the batches: the header, and the basis of scheme basis (spec section 2).
        self._lead = [(HEAD, self._head_json), *([(BASE, _basis_payload(self.header, basis))] if basis else [])]
        resuming = resume and self.partial.exists()
        self._file = _open_exclusive(self.partial)  # lives until finish()/close()
        try:
            if resuming:
                self._reopen()
            else:
                self._file.truncate(0)
                self._file.write(PREAMBLE.pack(MAGIC, FORMAT_MAJOR, FORMAT_MINOR, 0))
                for ctype, payload in self._lead:
                    self._append(ctype, 0, payload)
        except BaseException:  # a full disk, Ctrl-C: a partial file this writer began holds nothing worth keeping
            self._file.close()
            if not resuming:
                self.partial.unlink(missing_ok=True)
            raise

    def _reopen(self) -> None:
        entries, end = scan_partial(self._file, self.header.relabel.batches_per_epoch, self.codec.chunk_type)
        lead = entries[: len(self._lead)]
        if [(e.type, self._read(e)) for e in lead] != self._lead:
            raise LpqlError(
                "resume-mismatch",
                f"{self.partial} was started with other settings",
                "rerun with the same settings, or delete it to start over",
            )
        self._entries = entries
        self.stored = [e.id for e in entries if e.type == self.codec.chunk_type]
        self._file.seek(end)
        self._file.truncate()

    def _read(self, entry: Entry) -> bytes:
        self._file.seek(entry.offset + FRAME.size)
        return self._file.read(entry.length)

    def _append(self, ctype: bytes, cid: int, payload: bytes) -> None:
        offset = self._file.tell()
        self._file.write(frame(ctype, payload))
        self._entries.append(Entry(ctype, cid, offset, len(payload)))
        if ctype == self.codec.chunk_type:
            self.stored.append(cid)

    def add(self, rec: BatchRecord) -> None:
        self.add_encoded(rec.epoch * self.header.relabel.batches_per_epoch + rec.batch, self.codec.encode(rec))

    def add_encoded(self, bid: int, payload: bytes) -> None:
        """Append a batch payload encoded for this header (as `add` makes, or copied from another file)."""
        if bid not in self._kept:
            raise LpqlError("lpql-bad-batch", f"batch {bid} is not in the header's kept list")
        if self.stored and bid <= self.stored[-1]:
            raise LpqlError("lpql-bad-batch", f"batch {bid} written after batch {self.stored[-1]}: ids must increase")
        self._append(self.codec.chunk_type, bid, payload)
        self._file.flush()

    def finish(self, calibration: Calibration | None = None) -> Path:
        missing = self._kept.difference(self.stored)
        if missing:
            raise LpqlError(
                "lpql-incomplete", f"{len(missing)} kept batches were never written (first: {min(missing)})"
            )
        if calibration is not None:
            # calz: the per-class tables of 1,000 classes are ~1 MB of JSON, a few hundred KB compressed
            raw = calibration.model_dump_json().encode()
            self._append(CALZ, 0, zstandard.ZstdCompressor(level=19, write_content_size=True).compress(raw))
        index = np.array([(e.type, e.id, e.offset, e.length) for e in self._entries], dtype=INDEX_ENTRY)
        index_offset = self._file.tell()
        self._file.write(frame(INDX, struct.pack("<I", len(index)) + index.tobytes()))
        self._file.write(footer(index_offset))
        self._file.flush()
        os.fsync(self._file.fileno())
        try:
            _rename_no_replace(self.partial, self.path)
        finally:
            self._file.close()
        return self.path

    def close(self) -> None:
        """Stop writing without finishing: the partial file stays for a later resume."""
        if not self._file.closed:
            self._file.close()

    def discard(self) -> None:
        """Stop and delete the partial file: for short jobs that are simply rerun. Closing a file whose buffered
        bytes a full disk refuses fails again; the file is deleted all the same, which frees the disk."""
        with contextlib.suppress(OSError):
            self.close()
        self.partial.unlink(missing_ok=True)

    def __enter__(self) -> LpqlWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
