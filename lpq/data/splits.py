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

from concurrent.futures import ThreadPoolExecutor
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


def parse_data(spec: str) -> tuple[str, Path | None]:
    """``digits`` / ``cifar10`` / ``cifar100`` / ``imagefolder:PATH`` / PATH -> (kind, path); ``wds:`` and ``hf:``
    specs -> (kind, None)."""
    if spec in NAMED or spec.startswith(("wds:", "hf:")):
        return spec.partition(":")[0] if ":" in spec else spec, None
    path = Path(spec.removeprefix("imagefolder:")).expanduser()
    if not path.is_dir():
        raise LpqError(
            "data-not-found",
            f"--data {spec!r} is neither a known dataset nor a folder",
            f"use {', '.join(NAMED)}, imagefolder:PATH, wds:SHARD-PATTERN or hf:NAME_OR_PATH",
        )
    return "imagefolder", path


def recorded(spec: str) -> str:
    """``spec`` as a file that others read later records it: a folder as its absolute path (so it resolves from
    any working directory), a named dataset or a shard pattern as given."""
    kind, path = parse_data(spec)
    return str(path.resolve()) if kind == "imagefolder" and path is not None else spec


def open_split(
    spec: str, split: str = "train", root: Path | None = None, download: bool = False, skip_bad: bool = False
) -> ImageSource:
    """The 'train' or 'test' split of a dataset named as on the CLI, in memory or streamed (see above).

    An unreadable file stops with `BadImage`; with ``skip_bad`` an in-memory split leaves it out (listed in
    ``skipped``), and a streamed one skips it when loading (counted by `lpq.data.loader.Batches`).
    """
    kind, path = parse_data(spec)
    if kind == "wds":
        return held(open_shards(spec.removeprefix("wds:"), split), skip_bad)
    if kind == "hf":
        return held(open_hub(spec.removeprefix("hf:"), split), skip_bad)
    if path is None:
        return named_split(kind, split, root, download)
    return held(ImageFiles(f"imagefolder:{path}", list_split(path, split)), skip_bad)


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
    kind, path = parse_data(spec)
    if kind in ("wds", "hf"):
        return open_split(spec, "train")
    if path is None:
        return named_split(kind, "train", None, False)
    files = list_split(path, "train")
    return open_cached(f"imagefolder:{path}", files, path)


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
