"""Opening data by the one name the CLI uses (``--data``), choosing in memory or streamed automatically.

``digits``, ``cifar10`` and ``cifar100`` are held in memory. An image folder (``imagefolder:PATH`` or a
plain PATH, any layout of `lpq.data.layout`) is held in memory when its first image is at most 64 pixels
on each side and the split has at most 300,000 images (at most 3.7 GB decoded) and all images share one
size; otherwise it is streamed: decoded when used, in DataLoader workers. Both give the same pixels, labels
and order. Distilled image sets (what relabel and train replay) are read through the folder's pixel cache.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

from lpq.data.layout import FileList, list_split
from lpq.data.named import NAMED, channel_stats, named_split
from lpq.data.sources import BadImage, ImageFiles, ImageSet, ImageSource, decode, open_cached
from lpq.errors import LpqError

SMALL_SIDE = 64  # pixels: folders of images at most this large are held in memory
SMALL_COUNT = 300_000


def parse_data(spec: str) -> tuple[str, Path | None]:
    """``digits`` / ``cifar10`` / ``cifar100`` / ``imagefolder:PATH`` / PATH -> (kind, path)."""
    if spec in NAMED:
        return spec, None
    path = Path(spec.removeprefix("imagefolder:")).expanduser()
    if not path.is_dir():
        raise LpqError(
            "data-not-found",
            f"--data {spec!r} is neither a known dataset nor a folder",
            f"use {', '.join(NAMED)}, or imagefolder:PATH",
        )
    return "imagefolder", path


def open_split(
    spec: str, split: str = "train", root: Path | None = None, download: bool = False, skip_bad: bool = False
) -> ImageSource:
    """The 'train' or 'test' split of a dataset named as on the CLI, in memory or streamed (see above).

    An unreadable file stops with `BadImage`; with ``skip_bad`` an in-memory split leaves it out (listed in
    ``skipped``), and a streamed one skips it when loading (counted by `lpq.data.loader.Batches`).
    """
    kind, path = parse_data(spec)
    if path is None:
        return named_split(kind, split, root, download)
    files = list_split(path, split)
    name = f"imagefolder:{path}"
    if len(files) <= SMALL_COUNT and max(_header_size(files.files[0])) <= SMALL_SIDE:
        held = _in_memory(name, files, skip_bad)
        if held is not None:
            return held
    return ImageFiles(name, files)


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
    if path is None:
        return named_split(kind, "train", None, False)
    files = list_split(path, "train")
    return open_cached(f"imagefolder:{path}", files, path)


def _header_size(path: Path) -> tuple[int, int]:
    from PIL import Image

    try:
        with Image.open(path) as im:
            return im.height, im.width
    except OSError:
        return (SMALL_SIDE + 1, SMALL_SIDE + 1)  # unreadable: the streamed path reports it by name


def _in_memory(name: str, files: FileList, skip_bad: bool) -> ImageSet | None:
    """All images decoded into one tensor, or None when they differ in size (then they are streamed)."""

    def read(path: Path) -> torch.Tensor | BadImage:
        try:
            return decode(path)
        except BadImage as e:
            if not skip_bad:
                raise
            return e

    with ThreadPoolExecutor(max_workers=4) as pool:
        arrays = list(pool.map(read, files.files, chunksize=256))
    good = [i for i, a in enumerate(arrays) if isinstance(a, torch.Tensor)]
    if not good or len({tuple(arrays[i].shape) for i in good}) != 1:  # type: ignore[union-attr]
        return None
    images = torch.stack([arrays[i] for i in good])  # type: ignore[misc]
    # Statistics of this split; models normalize with the teacher's (training-split) statistics anyway.
    mean, std = channel_stats(images)
    skipped = [str(a.path) for a in arrays if isinstance(a, BadImage)]
    return ImageSet(name, images, torch.from_numpy(files.labels[good]), files.classes, mean, std, skipped)
