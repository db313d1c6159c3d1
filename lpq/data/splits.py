"""Opening data by the one name the CLI uses (``--data``), choosing in memory or streamed automatically.

``digits``, ``cifar10`` and ``cifar100`` are held in memory. An image folder (``imagefolder:PATH`` or a
plain PATH, any layout of `lpq.data.layout`), webdataset shards (``wds:PATTERN``, `lpq.data.shards`) and a
Hugging Face dataset (``hf:NAME_OR_PATH[:SPLIT]``, `lpq.data.hub`) are held in memory when the split's first
image is at most 64 pixels on each side, it has at most 300,000 images (at most 3.7 GB decoded) and all
images share one size; otherwise they are streamed: decoded when used, in DataLoader workers. Every source
gives the same pixels, labels and order for the same images. Distilled image sets (what relabel and train
replay) are read through the folder's pixel cache.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import torch

from lpq.data.hub import open_hub
from lpq.data.layout import list_split
from lpq.data.named import NAMED, channel_stats, named_split
from lpq.data.shards import open_shards
from lpq.data.sources import BadImage, EncodedImages, ImageFiles, ImageSet, ImageSource, open_cached
from lpq.errors import LpqError

SMALL_SIDE = 64  # pixels: folders of images at most this large are held in memory
SMALL_COUNT = 300_000


# Data named by a prefix, opened as a listing of encoded images: ``wds:PATTERN``, ``hf:NAME_OR_PATH[:SPLIT]``.
PREFIXES: dict[str, Callable[[str, str], ImageFiles | EncodedImages]] = {"wds": open_shards, "hf": open_hub}


@dataclass(frozen=True)
class DataSpec:
    """A ``--data`` string, parsed once: a named set (``kind`` its name), a registered prefix (``kind`` the prefix,
    ``target`` the rest), or an image folder (``kind`` imagefolder, ``path`` the folder)."""

    kind: str
    target: str
    path: Path | None = None


def parse_data(spec: str) -> DataSpec:
    """The `DataSpec` of a ``--data`` string; one line naming the choices when it names nothing."""
    if spec in NAMED:
        return DataSpec(spec, spec)
    prefix, colon, rest = spec.partition(":")
    if colon and prefix in PREFIXES:
        return DataSpec(prefix, rest)
    path = folder_of(spec)
    if path is None:
        raise LpqError(
            "data-not-found",
            f"--data {spec!r} is neither a known dataset nor a folder",
            f"use {', '.join(NAMED)}, imagefolder:PATH, {', '.join(f'{p}:...' for p in PREFIXES)} or a folder's PATH",
        )
    return DataSpec("imagefolder", str(path), path)


def folder_of(spec: str) -> Path | None:
    """The folder a ``--data`` string names (``imagefolder:PATH`` or a plain PATH), if it names one that exists."""
    if spec in NAMED or spec.partition(":")[0] in PREFIXES:
        return None
    path = Path(spec.removeprefix("imagefolder:")).expanduser()
    return path if path.is_dir() else None


def recorded(spec: str) -> str:
    """``spec`` as a file that others read later records it: a folder as its absolute path (so it resolves from
    any working directory), a named dataset or a prefixed source as given."""
    data = parse_data(spec)
    return str(data.path.resolve()) if data.path is not None else spec


def open_split(
    spec: str, split: str = "train", root: Path | None = None, download: bool = False, skip_bad: bool = False
) -> ImageSource:
    """The 'train' or 'test' split of a dataset named as on the CLI, in memory or streamed (see above).

    An unreadable file stops with `BadImage`; with ``skip_bad`` an in-memory split leaves it out (listed in
    ``skipped``), and a streamed one skips it when loading (counted by `lpq.data.loader.Batches`).
    """
    data = parse_data(spec)
    if data.kind in PREFIXES:
        return held(PREFIXES[data.kind](data.target, split), skip_bad)
    if data.path is None:
        return named_split(data.kind, split, root, download)
    return held(ImageFiles(f"imagefolder:{data.path}", list_split(data.path, split)), skip_bad)


def load_split(spec: str, split: str = "train", root: Path | None = None, download: bool = False) -> ImageSet:
    """A split that must be in memory (small sets: tests, digits, CIFAR), with a clear error otherwise."""
    source = open_split(spec, split, root, download)
    if not isinstance(source, ImageSet):
        raise LpqError(
            "data-too-large",
            f"{spec} ({split}) is streamed, not held in memory",
            "this step needs images of one size of at most 64 px",
        )
    return source


def open_images(spec: str) -> ImageSource:
    """A distilled image set to replay: a named set's training split, or a folder through its pixel cache."""
    data = parse_data(spec)
    if data.kind in PREFIXES:
        return open_split(spec, "train")
    if data.path is None:
        return named_split(data.kind, "train", None, False)
    return open_cached(f"imagefolder:{data.path}", list_split(data.path, "train"), data.path)


def small(source: ImageFiles | EncodedImages) -> bool:
    """Whether a split is held in memory: few enough images, the first at most SMALL_SIDE on each side."""
    if not len(source) or len(source) > SMALL_COUNT:
        return False
    try:
        h, w = source.size_of(0)
    except BadImage:
        return False  # unreadable: the streamed path reports it by name
    return max(h, w) <= SMALL_SIDE


def held(source: ImageFiles | EncodedImages, skip_bad: bool) -> ImageSource:
    """A small split decoded into memory (an ImageSet), or ``source`` itself when it is large or its images
    differ in size (then they are streamed). Any source gives the same pixels, labels and order."""
    if not small(source):
        return source

    def read(i: int) -> torch.Tensor | BadImage:
        try:
            return source.load(i)
        except BadImage as e:
            if not skip_bad:
                raise
            return e

    with ThreadPoolExecutor(max_workers=4) as pool:
        arrays = list(pool.map(read, range(len(source)), chunksize=256))
    good = [i for i, a in enumerate(arrays) if isinstance(a, torch.Tensor)]
    if not good or len({tuple(arrays[i].shape) for i in good}) != 1:  # type: ignore[union-attr]
        return source
    images = torch.stack([arrays[i] for i in good])  # type: ignore[misc]
    # Statistics of this split; models normalize with the teacher's (training-split) statistics anyway.
    mean, std = channel_stats(images)
    skipped = [str(a.path) for a in arrays if isinstance(a, BadImage)]
    return ImageSet(source.name, images, source.labels[good], source.classes, mean, std, skipped)
