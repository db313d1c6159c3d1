"""Image sources: N labelled images that can be listed, sized and decoded one at a time.

Four implementations of one protocol (`ImageSource`):

- `ImageSet`: uint8 pixels of one size in memory (digits, CIFAR, small folders): fastest for small sets.
- `ImageFiles`: files decoded when used (any size, any PIL mode), for real data of any size; decoding
  happens in DataLoader workers, so memory does not grow with the number of images.
- `EncodedImages`: encoded images (JPEG, PNG, WebP bytes) read by index from a container, webdataset shards
  (`lpq.data.shards`) or a Hugging Face dataset (`lpq.data.hub`), decoded exactly as files are.
- `CachedImages`: a folder's decoded pixels in one uint8 cache file (under the user's cache directory, never
  in the folder: other tools read it as an ImageFolder; made once, rebuilt when a file changes), read image by
  image with ``pread``: distilled sets of any size are replayed without decoding, and their pages stay in the
  OS cache rather than in the process. A cache cannot lie: each open recomputes the content fingerprint from
  the cached pixels (a mismatch rebuilds the cache, with a warning), so the fingerprint a label file records
  is of the pixels served; each image read is checked against its CRC-32, so a cache changed while in use
  stops the work (``cache-corrupt``) instead of serving other pixels.

Fingerprints identify image sets. A content fingerprint is sha256 over the set's shape (``str((N, 3, H,
W))``, or ``(N, 3, 0, 0)`` when sizes differ), the labels (int64 little-endian), then every image's pixels
(uint8, C x H x W; each preceded by its height and width as two uint32 when sizes differ): the same digest
whichever source holds the images. A manifest fingerprint (``manifest:`` + sha256 over each file's relative
path, byte size and label) identifies a large real set without decoding it.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import struct
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import torch
from isal.isal_zlib import crc32  # zlib's CRC-32, about ten times faster

from lpq.data.layout import FileList
from lpq.errors import LpqError, LpqWarning
from lpq.files import CACHE_ENV, atomic
from lpq.locks import lock as take_lock

CACHE_FORMAT = "lpq-image-cache/2"  # 2: CRC-32 per image, index digest
DECODE_CHUNK = 256  # files decoded together while a cache is built: bounded memory


@runtime_checkable
class ImageSource(Protocol):
    name: str
    classes: list[str]
    labels: torch.Tensor  # (N,) int64

    def __len__(self) -> int: ...
    def sizes(self) -> np.ndarray: ...  # (N, 2) int64 heights and widths
    def load(self, index: int) -> torch.Tensor: ...  # (3, H, W) uint8
    def fingerprint(self) -> str: ...


class BadImage(LpqError):
    """An image file that cannot be decoded. One argument: a worker's traceback text (see LpqError)."""

    def __init__(self, path: Path | str, reason: str | None = None) -> None:
        if reason is None:
            super().__init__(str(path))
            self.path: Path | None = None
            return
        super().__init__(
            "data-bad-image",
            f"cannot read image {path} ({reason})",
            "remove or replace the file, or pass --skip-bad-images",
        )
        self.path = Path(path)


def decode(path: Path | str, data: bytes | None = None) -> torch.Tensor:
    """A file (or its bytes, ``data``, named ``path``) as RGB uint8 (3, H, W): grayscale, palette, CMYK and alpha
    images become RGB. Bytes and files decode identically."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data) if data is not None else path) as im:
            rgb = np.asarray(im.convert("RGB"))
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as e:
        raise BadImage(path, str(e).splitlines()[0] if str(e) else type(e).__name__) from None
    return torch.from_numpy(rgb.transpose(2, 0, 1).copy())


def header_size(path: Path | str, data: bytes | None = None) -> tuple[int, int]:
    """(height, width) from an image's header, without decoding its pixels."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data) if data is not None else path) as im:
            return im.height, im.width
    except OSError as e:
        raise BadImage(path, str(e)) from None


class ContentDigest:
    """The content fingerprint, fed image by image (see the module docstring)."""

    def __init__(self, sizes: np.ndarray, labels: np.ndarray) -> None:
        self.uniform = bool(len(sizes)) and bool((sizes == sizes[0]).all())
        h, w = (int(sizes[0][0]), int(sizes[0][1])) if self.uniform else (0, 0)
        self._h = hashlib.sha256(str((len(sizes), 3, h, w)).encode())
        self._h.update(labels.astype("<i8").tobytes())

    def add(self, pixels: torch.Tensor) -> None:
        if not self.uniform:
            self._h.update(struct.pack("<II", pixels.shape[1], pixels.shape[2]))
        self._h.update(pixels.contiguous().numpy().tobytes())

    def hexdigest(self) -> str:
        return self._h.hexdigest()


@dataclass
class ImageSet:
    """A labelled image set in memory: uint8 pixels (N, 3, H, W), int64 labels (N,), class names, and the
    per-channel statistics of the split (what a teacher trained on it normalizes with)."""

    name: str
    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    skipped: list[str] = field(default_factory=list)  # unreadable files left out (--skip-bad-images)

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def image_size(self) -> int:
        return int(self.images.shape[-1])

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def sizes(self) -> np.ndarray:
        return np.tile(np.array(self.images.shape[2:], np.int64), (len(self), 1))

    def load(self, index: int) -> torch.Tensor:
        return self.images[index]

    def fingerprint(self) -> str:
        digest = ContentDigest(self.sizes(), self.labels.numpy())
        digest.add(self.images)  # (N, 3, H, W) C-order: the images' pixels one after another
        return digest.hexdigest()


@dataclass
class ImageFiles:
    """Image files decoded when loaded; for real data of any size (``fingerprint`` is a manifest)."""

    name: str
    files: FileList
    classes: list[str] = field(init=False)
    labels: torch.Tensor = field(init=False)

    def __post_init__(self) -> None:
        self.classes = self.files.classes
        self.labels = torch.from_numpy(self.files.labels)

    def __len__(self) -> int:
        return len(self.files)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def size_of(self, index: int) -> tuple[int, int]:
        return header_size(self.files.files[index])

    def sizes(self) -> np.ndarray:
        return np.array([self.size_of(i) for i in range(len(self))], np.int64).reshape(-1, 2)

    def load(self, index: int) -> torch.Tensor:
        return decode(self.files.files[index])

    def fingerprint(self) -> str:
        return "manifest:" + manifest_digest(self.files)


class Encoded(Protocol):
    """Random access to N encoded images: their bytes and a name for messages (a shard member, a row)."""

    def __len__(self) -> int: ...
    def read(self, index: int) -> bytes: ...
    def where(self, index: int) -> str: ...


@dataclass
class EncodedImages:
    """Encoded images read by index from a container (shards, a dataset) and decoded when loaded, in DataLoader
    workers; ``fingerprint`` is the container's manifest digest."""

    name: str
    records: Encoded
    labels: torch.Tensor
    classes: list[str]
    manifest: str

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def size_of(self, index: int) -> tuple[int, int]:
        return header_size(self.records.where(index), self.records.read(index))

    def sizes(self) -> np.ndarray:
        return np.array([self.size_of(i) for i in range(len(self))], np.int64).reshape(-1, 2)

    def load(self, index: int) -> torch.Tensor:
        return decode(self.records.where(index), self.records.read(index))

    def fingerprint(self) -> str:
        return "manifest:" + self.manifest


def manifest_digest(files: FileList, with_mtime: bool = False) -> str:
    """sha256 over relative path, byte size (and modification time) and label of every file."""
    h = hashlib.sha256()
    for f, label in zip(files.files, files.labels.tolist()):
        st = f.stat()
        # A name is hashed as the bytes it has on disk: not every file system name is UTF-8.
        h.update(f"{f.relative_to(files.root).as_posix()}\t{st.st_size}\t{label}".encode("utf-8", "surrogateescape"))
        if with_mtime:
            h.update(f"\t{st.st_mtime_ns}".encode())
        h.update(b"\n")
    return h.hexdigest()


class CachedImages:
    """A folder's images as one uint8 cache file of decoded pixels, read with ``pread`` (see the docstring)."""

    def __init__(self, name: str, files: FileList, cache: Path, index: CacheIndex) -> None:
        self.name = name
        self.classes = files.classes
        self.labels = torch.from_numpy(files.labels)
        self.cache = cache
        self._fingerprint = index.fingerprint
        self._sizes, self._offsets = index.sizes, index.offsets
        self._checks = index.checks.tolist()  # compared with a Python int per image: no numpy scalar on the way
        self._fd: int | None = None
        self._pid = -1

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def sizes(self) -> np.ndarray:
        return self._sizes

    def fingerprint(self) -> str:
        return self._fingerprint

    def load(self, index: int) -> torch.Tensor:
        if self._fd is None or self._pid != os.getpid():  # one descriptor per DataLoader worker process
            self._fd = os.open(self.cache / "pixels.u8", os.O_RDONLY)
            self._pid = os.getpid()
        h, w = (int(v) for v in self._sizes[index])
        raw = bytearray(3 * h * w)  # read into the tensor's own buffer: one pass over the pixels fewer
        if os.preadv(self._fd, [raw], int(self._offsets[index])) != len(raw) or crc32(raw) != self._checks[index]:
            raise LpqError(
                "cache-corrupt",
                f"image {index} of the pixel cache {self.cache} changed on disk while in use",
                "rerun: an open checks the cache and rebuilds it",
            )
        return torch.frombuffer(raw, dtype=torch.uint8).view(3, h, w)

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_fd"] = None
        return state

    def __del__(self) -> None:
        if self._fd is not None and self._pid == os.getpid():
            os.close(self._fd)


def cache_root() -> Path:
    """The directory image caches live under: $LPQ_CACHE_DIR, else $XDG_CACHE_HOME/lpq, else ~/.cache/lpq."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "lpq"


def cache_location(folder: Path) -> Path:
    """A folder's cache directory, keyed by the folder's resolved path (its contents are checked on every open).
    Never inside the folder: an input folder is not ours to write into."""
    return cache_root() / "images" / hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:24]


def open_cached(name: str, files: FileList, folder: Path) -> CachedImages:
    """The folder's pixel cache, made (once, under a lock shared by concurrent processes) if missing or stale,
    and its contents checked against its fingerprint when current (see the module docstring)."""
    cache = cache_location(folder)
    cache.parent.mkdir(parents=True, exist_ok=True)
    key = manifest_digest(files, with_mtime=True)
    with open(cache.parent / f"{cache.name}.lock", "w") as lock:
        take_lock(lock)
        meta = _read_meta(cache)
        current = meta is not None and meta.get("format") == CACHE_FORMAT and meta.get("manifest") == key
        index = _checked_index(cache, meta, files) if meta is not None and current else None
        if isinstance(index, str):
            warnings.warn(f"the pixel cache {cache} of {folder} {index}: rebuilt from the files", LpqWarning, 2)
        if not isinstance(index, CacheIndex):
            index = _build_cache(cache, files, key)
    return CachedImages(name, files, cache, index)


@dataclass(frozen=True)
class CacheIndex:
    """Where each image of a pixel cache lies, its CRC-32, and the content fingerprint of them all."""

    sizes: np.ndarray  # (N, 2) int64
    offsets: np.ndarray  # (N,) int64
    checks: np.ndarray  # (N,) uint32
    fingerprint: str

    def digest(self) -> str:
        """sha256 of the index itself, kept in meta.json: an edited sizes, offsets or checks file is seen."""
        h = hashlib.sha256(self.fingerprint.encode())
        for a in (self.sizes.astype("<i8"), self.offsets.astype("<i8"), self.checks.astype("<u4")):
            h.update(a.tobytes())
        return h.hexdigest()

    def write(self, folder: Path, meta: dict[str, object]) -> None:
        np.save(folder / "sizes.npy", self.sizes)
        np.save(folder / "offsets.npy", self.offsets)
        np.save(folder / "checks.npy", self.checks)
        meta = {**meta, "fingerprint": self.fingerprint, "index": self.digest()}
        (folder / "meta.json").write_text(json.dumps(meta))

    @classmethod
    def read(cls, folder: Path, meta: dict[str, object]) -> CacheIndex:
        """The index in ``folder`` whose meta.json (already read) is ``meta``."""
        arrays = (np.load(folder / f"{n}.npy", allow_pickle=False) for n in ("sizes", "offsets", "checks"))
        return cls(*arrays, fingerprint=str(meta["fingerprint"]))


def _read_meta(cache: Path) -> dict[str, object] | None:
    """A cache's meta.json, or None where there is none that reads as a JSON object."""
    try:
        meta = json.loads((cache / "meta.json").read_text())
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) else None


def _checked_index(cache: Path, meta: dict[str, object], files: FileList) -> CacheIndex | str:
    """A current cache's index, or what is wrong with the cache: its index against the digest its ``meta``
    records, then its pixels (read once, in order) against the content fingerprint they must give."""
    try:
        index = CacheIndex.read(cache, meta)
        if meta.get("index") != index.digest() or len(index.checks) != len(files):
            return "does not match its index"
        digest = ContentDigest(index.sizes, files.labels)
        with open(cache / "pixels.u8", "rb") as f:
            for h, w in index.sizes.tolist():
                raw = f.read(3 * h * w)
                if len(raw) != 3 * h * w:
                    return "is shorter than its index"
                digest.add(torch.frombuffer(bytearray(raw), dtype=torch.uint8).view(3, h, w))
            if f.read(1):
                return "is longer than its index"
    except (OSError, ValueError, KeyError) as e:
        return f"cannot be read ({e})"
    return index if digest.hexdigest() == index.fingerprint else "holds other pixels than its fingerprint says"


def _build_cache(cache: Path, files: FileList, key: str) -> CacheIndex:
    """Decode every file once into pixels.u8, computing the content fingerprint on the way; rename when done."""
    sizes = ImageFiles(str(files.root), files).sizes()  # from the headers: the digest needs them first
    offsets = np.concatenate([[0], np.cumsum(3 * sizes[:, 0] * sizes[:, 1])[:-1]]).astype(np.int64)
    digest = ContentDigest(sizes, files.labels)
    checks = np.zeros(len(files), np.uint32)
    shutil.rmtree(cache, ignore_errors=True)  # stale: a file changed, or the cache did
    with atomic(cache) as tmp:
        tmp.mkdir(parents=True)
        with open(tmp / "pixels.u8", "wb") as out, ThreadPoolExecutor(4) as pool:
            for start in range(0, len(files), DECODE_CHUNK):
                chunk = files.files[start : start + DECODE_CHUNK]
                decoded = zip(chunk, sizes[start : start + DECODE_CHUNK].tolist(), pool.map(decode, chunk))
                for n, (path, size, x) in enumerate(decoded, start):
                    if list(x.shape[1:]) != size:
                        raise BadImage(path, "the decoded size differs from the size in its header")
                    digest.add(x)
                    raw = x.numpy().tobytes()
                    checks[n] = crc32(raw)
                    out.write(raw)
        index = CacheIndex(sizes, offsets, checks, digest.hexdigest())
        index.write(tmp, {"format": CACHE_FORMAT, "manifest": key, "count": len(files)})
    return index
