"""Which files make up a split of an image folder, in the order spec/lpql-v1.md section 6.1 numbers them.

Layouts recognized, in this order:

- Tiny-ImageNet's release: ``train/<wnid>/images/*.JPEG``, and ``val/images/*`` labelled by
  ``val/val_annotations.txt`` (file, wnid, box); its test split is ``val``.
- ImageFolder: ``train/<class>/*`` with ``val/<class>/*`` or ``test/<class>/*`` (ImageNet after the usual
  validation preparation, ../shared/data's CIFAR-10 and Tiny-ImageNet).
- A bare folder of class folders (what `lpq synth` writes): one split on its own.

Classes are the class folder names in sorted order (for ImageNet: sorted wnids, the order torchvision's
pretrained weights use); files are sorted by name within each class. Folders and files whose names start
with a dot are ignored. Names need not be UTF-8 (Python keeps their bytes as surrogate escapes; digests hash
the bytes on disk).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lpq.errors import LpqError, LpqWarning

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".ppm", ".tif", ".tiff", ".gif"}
TINY_ANNOTATIONS = Path("val") / "val_annotations.txt"


@dataclass(frozen=True)
class FileList:
    """The files of one split, their class numbers, and the class names."""

    root: Path  # the dataset folder; manifests name files relative to it
    files: list[Path]
    labels: np.ndarray  # (N,) int64
    classes: list[str]

    def __len__(self) -> int:
        return len(self.files)


def _visible(folder: Path) -> list[Path]:
    """The entries of a folder whose names do not start with a dot; links that lead nowhere (a loop, a missing
    target) are said and skipped, as is_dir and is_file would skip them silently."""
    entries = [p for p in folder.iterdir() if not p.name.startswith(".")]
    dangling = [p for p in entries if p.is_symlink() and not p.exists()]
    if dangling:
        warnings.warn(
            f"{len(dangling)} link(s) in {folder} lead nowhere (a loop or a missing target) and are skipped "
            f"(first: {dangling[0].name})",
            LpqWarning,
            stacklevel=3,
        )
    return entries


def _visible_dirs(path: Path) -> list[Path]:
    return sorted((p for p in _visible(path) if p.is_dir()), key=lambda p: p.name)


def _images_in(folder: Path) -> list[Path]:
    visible = [p for p in _visible(folder) if p.is_file()]
    others = [p for p in visible if p.suffix.lower() not in IMAGE_SUFFIXES]
    if others:  # said, never silent: a class folder may hold a README or a stray archive
        warnings.warn(
            f"{len(others)} file(s) in {folder} are not images and are skipped (first: {others[0].name})",
            LpqWarning,
            stacklevel=2,
        )
    return sorted(p for p in visible if p.suffix.lower() in IMAGE_SUFFIXES)


def _gather(root: Path, by_class: dict[str, list[Path]], where: Path) -> FileList:
    if not by_class:
        raise LpqError("data-no-classes", f"{where} holds no class folders")
    classes = sorted(by_class)
    files: list[Path] = []
    labels: list[int] = []
    for i, c in enumerate(classes):
        found = sorted(by_class[c])
        if not found:
            raise LpqError("data-empty-class", f"class {c} in {where} holds no images")
        files += found
        labels += [i] * len(found)
    return FileList(root, files, np.asarray(labels, np.int64), classes)


def is_tiny_release(path: Path) -> bool:
    return (path / TINY_ANNOTATIONS).is_file() and (path / "train").is_dir()


def _tiny_release(path: Path, split: str) -> FileList:
    classes = [d.name for d in _visible_dirs(path / "train")]
    if split == "train":
        return _gather(path, {c: _images_in(path / "train" / c / "images") for c in classes}, path / "train")
    by_class: dict[str, list[Path]] = {c: [] for c in classes}
    for n, line in enumerate((path / TINY_ANNOTATIONS).read_text().splitlines(), 1):
        fields = line.split("\t")
        if not line.strip():
            continue
        if len(fields) < 2 or fields[1] not in by_class:
            raise LpqError("data-bad-annotations", f"{path / TINY_ANNOTATIONS} line {n} names no training class")
        by_class[fields[1]].append(path / "val" / "images" / fields[0])
    return _gather(path, by_class, path / "val")


def split_folder(path: Path, split: str) -> Path:
    """The class-folder directory of a split in an ImageFolder layout (or ``path`` itself if bare)."""
    names = ("train",) if split == "train" else ("val", "test")
    for n in names:
        if (path / n).is_dir():
            return path / n
    if _visible_dirs(path):
        return path  # a bare set of class folders, as `lpq synth` writes
    raise LpqError("data-no-split", f"{path} has no {' or '.join(names)}/ folder of class folders")


def list_split(path: Path, split: str) -> FileList:
    """Files and labels of the 'train' or 'test' split of an image folder in any layout above."""
    if is_tiny_release(path):
        return _tiny_release(path, split)
    folder = split_folder(path, split)
    return _gather(path, {d.name: _images_in(d) for d in _visible_dirs(folder)}, folder)
