"""Webdataset shards as an image source: ``--data wds:PATTERN``.

PATTERN names local tar shards, with brace ranges as webdataset writes them
(``/data/imagenet/train-{000000..001281}.tar``), expanded by webdataset's own expander. Samples follow the
webdataset convention: tar members sharing a key (the name up to its first dot) form one sample, whose image
is its ``.jpg``/``.jpeg``/``.png``/``.webp`` member and whose label is its ``.cls`` member (an integer as
text) or ``.json`` member (an integer, or an object with ``label`` or ``cls``). Class names come from
``classes.txt`` (one per line) or ``classes.json`` (a list) beside the shards, else the label numbers.

Splits: the pattern is the split asked for; asked for the test split, a pattern naming ``train`` is read as
its ``val`` (else ``test``) sibling in the same directory, with any numbering (``imagenet-val-*.tar``).

Random access: lpq's sources are read by index (shuffled training batches, one split across ranks), and
webdataset 1.x reads tars only in sequence, so each shard's members are indexed once from their tar headers
(the stdlib reads headers and seeks past the data) and read with one seek. Shards must be uncompressed tars,
which is what webdataset writes for images.

The index is cached under the user's cache directory and cannot lie: it is keyed by the shard's path, inode,
size and modification and change times (a shard rewritten in place with its size and modification time
restored still has a new change time, which no user call sets), it carries a digest of its own contents (an
edited index is seen, and rebuilt with a warning), and every image read takes its tar header along and checks
that it is the member the index says (a shard changed while in use stops the work by name).
"""

from __future__ import annotations

import hashlib
import json
import os
import tarfile
import warnings
from pathlib import Path

import numpy as np
import torch

from lpq.data.sources import EncodedImages, cache_root
from lpq.errors import LpqError, LpqWarning
from lpq.files import atomic

IMAGE_EXTS = ("jpg", "jpeg", "png", "webp")
INDEX_FORMAT = "lpq-wds-index/2"  # 2: keyed by inode and change time, with a digest


def shard_paths(pattern: str, split: str) -> list[Path]:
    """The shards of ``split`` (see the module docstring), in order."""
    try:
        from webdataset.shardlists import expand_urls
    except ImportError:
        raise LpqError("extra-missing", "--data wds: needs webdataset", "pip install 'lpq[wds]'") from None
    if split != "train" and "train" in Path(pattern).name:
        for other in ("val", "test"):
            stem = Path(pattern).name.replace("train", other)
            glob = stem.split("{")[0] + "*" + (stem.rsplit("}", 1)[1] if "}" in stem else "")
            found = sorted(Path(pattern).parent.expanduser().glob(glob))
            if found:
                return found
        raise LpqError("data-not-found", f"wds:{pattern} has no val or test shards beside it")
    paths = [Path(p).expanduser() for p in expand_urls(pattern)]
    missing = [p for p in paths if not p.is_file()]
    if not paths or missing:
        raise LpqError("data-not-found", f"wds:{pattern}: no shard {missing[0] if missing else pattern}")
    return paths


class ShardRecords:
    """Image bytes by sample index: (shard, offset, size) per sample, files opened once per process."""

    def __init__(self, shards: list[Path], where: np.ndarray, keys: list[str]) -> None:
        self.shards, self.at, self.keys = shards, where, keys  # at: (N, 3) int64 shard, offset, size
        self._files: dict[int, object] = {}
        self._pid = os.getpid()

    def __len__(self) -> int:
        return len(self.at)

    def read(self, index: int) -> bytes:
        shard, offset, size = (int(v) for v in self.at[index])
        if self._pid != os.getpid():  # a DataLoader worker: its own file handles
            self._files, self._pid = {}, os.getpid()
        f = self._files.get(shard)
        if f is None:
            f = self._files[shard] = open(self.shards[shard], "rb")  # noqa: SIM115 (kept open for reads)
        # The member's header block comes along (one read): it must be the member the index says.
        raw = os.pread(f.fileno(), tarfile.BLOCKSIZE + size, offset - tarfile.BLOCKSIZE)  # type: ignore[attr-defined]
        if not _is_member(raw[: tarfile.BLOCKSIZE], self.keys[index], size) or len(raw) != tarfile.BLOCKSIZE + size:
            raise LpqError(
                "data-bad-shard",
                f"{self.shards[shard]} changed since it was indexed: sample {self.keys[index]} is not where it was",
                "rerun: a changed shard is indexed again",
            )
        return raw[tarfile.BLOCKSIZE :]

    def where(self, index: int) -> str:
        return f"{self.shards[int(self.at[index, 0])]}:{self.keys[index]}"

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_files": {}}


def open_shards(pattern: str, split: str = "train") -> EncodedImages:
    """The split's samples as an image source (decoded when loaded), indexed once per shard."""
    shards = shard_paths(pattern, split)
    parts = [_index(p) for p in shards]
    at = np.concatenate([np.column_stack([np.full(len(a), i), a]) for i, (a, _, _) in enumerate(parts)])
    labels = np.concatenate([lab for _, lab, _ in parts])
    keys = [k for _, _, ks in parts for k in ks]
    if not len(labels):
        raise LpqError("data-empty", f"wds:{pattern} holds no samples")
    classes = _classes(shards[0].parent, int(labels.max()) + 1)
    if labels.min() < 0 or labels.max() >= len(classes):
        raise LpqError("data-bad-label", f"wds:{pattern} has labels outside its {len(classes)} classes")
    digest = hashlib.sha256()
    for p in shards:
        digest.update(f"{p.name}\0{p.stat().st_size}\0".encode())
    digest.update(labels.astype("<i8").tobytes())
    name = f"wds:{shards[0].parent}/{shards[0].name}..{shards[-1].name}"
    return EncodedImages(name, ShardRecords(shards, at, keys), torch.from_numpy(labels), classes, digest.hexdigest())


def _classes(folder: Path, count: int) -> list[str]:
    if (folder / "classes.txt").is_file():
        return [line.strip() for line in (folder / "classes.txt").read_text().splitlines() if line.strip()]
    if (folder / "classes.json").is_file():
        names = json.loads((folder / "classes.json").read_text())
        if isinstance(names, list):
            return [str(n) for n in names]
    width = len(str(count - 1))
    return [str(i).zfill(width) for i in range(count)]


def _is_member(block: bytes, key: str, size: int) -> bool:
    """Whether a tar header block is that of a regular file of ``size`` bytes in sample ``key``, read from its
    name, size and type fields alone (tarfile's full parse costs more than a small JPEG's read). The name field
    holds the first 100 bytes of a longer name (the full name is in an extension member before it)."""
    if len(block) < tarfile.BLOCKSIZE or block[156:157] not in (b"0", b"\0"):
        return False
    try:
        declared = int(block[124:136].strip(b" \0") or b"0", 8)
    except ValueError:  # base-256 sizes (over 8 GiB) are no image's
        return False
    name = block[:100].split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
    return declared == size and (name.startswith(key + ".") or (key + ".").startswith(name))


def _digest(at: np.ndarray, labels: np.ndarray, keys: list[str]) -> str:
    h = hashlib.sha256(INDEX_FORMAT.encode())
    h.update(at.astype("<i8").tobytes())
    h.update(labels.astype("<i8").tobytes())
    h.update("\0".join(keys).encode("utf-8", "surrogateescape"))
    return h.hexdigest()


def _index(shard: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(N, 2) offset and size of each sample's image, (N,) labels and the keys of one shard; cached."""
    st = shard.stat()
    identity = [INDEX_FORMAT, shard.resolve(), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]
    key = hashlib.sha256("\0".join(map(str, identity)).encode()).hexdigest()
    cached = cache_root() / "wds" / f"{key[:32]}.npz"
    if cached.is_file():
        try:
            with np.load(cached, allow_pickle=False) as z:
                at, labels, keys, digest = z["at"], z["labels"], z["keys"].tolist(), str(z["digest"])
            if digest == _digest(at, labels, keys):
                return at, labels, keys
        except (OSError, ValueError, KeyError):
            pass
        warnings.warn(f"the cached index {cached} of {shard} does not match its digest: indexed again", LpqWarning, 2)
    at, labels, keys = _scan(shard)
    cached.parent.mkdir(parents=True, exist_ok=True)
    with atomic(cached, unique=True) as tmp, open(tmp, "wb") as f:  # every torchrun rank indexes its shards
        np.savez(f, at=at, labels=labels, keys=np.array(keys), digest=np.array(_digest(at, labels, keys)))
    return at, labels, keys


def _scan(shard: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    from webdataset.tariterators import base_plus_ext

    images: dict[str, tuple[int, int]] = {}
    labels: dict[str, int] = {}
    order: list[str] = []
    try:
        with tarfile.open(shard, "r:") as tar:
            for info in tar:
                if not info.isfile():
                    continue
                key, ext = base_plus_ext(info.name)
                if key is None:
                    continue
                if key not in images and key not in labels:
                    order.append(key)
                ext = ext.lower()
                if ext in IMAGE_EXTS and key not in images:
                    images[key] = (info.offset_data, info.size)
                elif ext in ("cls", "json"):
                    labels[key] = _label(tar.extractfile(info).read(), ext, f"{shard}:{info.name}")  # type: ignore[union-attr]
            end = tar.offset  # where the end-of-archive blocks start
    except tarfile.TarError as e:
        if "unexpected end of data" in str(e):  # tarfile's word for a file that ends inside a member
            raise LpqError("data-bad-shard", f"{shard} is truncated: it ends inside a sample") from None
        raise LpqError("data-bad-shard", f"{shard} is not an uncompressed tar shard ({e})") from None
    with open(shard, "rb") as f:  # a tar ends in two zero blocks: without them, samples may be missing unseen
        f.seek(end)
        marker = f.read(2 * tarfile.BLOCKSIZE)
    if len(marker) < 2 * tarfile.BLOCKSIZE or any(marker):
        raise LpqError(
            "data-bad-shard",
            f"{shard} is truncated: no end-of-archive marker after its {len(order)} samples",
            "copy or write the shard again",
        )
    missing = next((k for k in order if k not in images or k not in labels), None)
    if missing is not None:
        what = "an image (.jpg/.png/.webp)" if missing not in images else "a label (.cls or .json)"
        raise LpqError("data-bad-shard", f"{shard}: sample {missing} has no {what}")
    at = np.array([images[k] for k in order], np.int64).reshape(-1, 2)
    return at, np.array([labels[k] for k in order], np.int64), order


def _label(raw: bytes, ext: str, where: str) -> int:
    try:
        value = json.loads(raw) if ext == "json" else int(raw.decode().strip())
        if isinstance(value, dict):
            value = value.get("label", value.get("cls"))
        return int(value)
    except (ValueError, TypeError, UnicodeDecodeError):
        raise LpqError("data-bad-label", f"{where} holds no integer label") from None
