"""Loading the named datasets into one in-memory image set type (see the package docstring)."""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from lpq.errors import LpqError

_IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".ppm", ".tif", ".tiff"}
# Per-channel statistics of the training splits (the values the CIFAR literature uses).
_STATS = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
}
DIGITS_SIZE = 16  # digits are 8x8; upsampled to a size every model here takes, small enough for CPU tests
_STATS_SAMPLE = 5000  # images used to estimate an image folder's normalization statistics


@dataclass
class ImageSet:
    """A labelled image set in memory: uint8 pixels (N, 3, H, W), int64 labels (N,), class names."""

    name: str
    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def image_size(self) -> int:
        return int(self.images.shape[-1])

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def fingerprint(self) -> str:
        """sha256 over shape, labels and pixels: changes when any image or label changes."""
        h = hashlib.sha256()
        h.update(str(tuple(self.images.shape)).encode())
        h.update(self.labels.numpy().astype("<i8").tobytes())
        h.update(self.images.contiguous().numpy().tobytes())
        return h.hexdigest()

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 or [0, 1] float images to the normalized floats the models take."""
        if x.dtype == torch.uint8:
            x = x.float() / 255.0
        mean = torch.tensor(self.mean, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, device=x.device).view(1, 3, 1, 1)
        return (x - mean) / std


def parse_data(spec: str) -> tuple[str, Path | None]:
    """``digits`` / ``cifar10`` / ``cifar100`` / ``imagefolder:PATH`` / PATH -> (kind, path)."""
    if spec in ("digits", "cifar10", "cifar100"):
        return spec, None
    path = Path(spec.removeprefix("imagefolder:")).expanduser()
    if not path.is_dir():
        raise LpqError("data-not-found", f"--data {spec!r} is neither a known dataset nor a folder",
                       "use digits, cifar10, cifar100, or imagefolder:PATH")
    return "imagefolder", path


def load_split(spec: str, split: str = "train", root: Path | None = None, download: bool = False) -> ImageSet:
    """The 'train' or 'test' split of a dataset named as on the CLI."""
    kind, path = parse_data(spec)
    if kind == "digits":
        return _digits(split)
    if kind in ("cifar10", "cifar100"):
        return _cifar(kind, split, root or Path("data"), download)
    assert path is not None
    return _image_folder(path, split)


def _digits(split: str) -> ImageSet:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = torch.from_numpy(d.images.astype(np.float32) / 16.0).unsqueeze(1)  # (N, 1, 8, 8) in [0, 1]
    x = torch.nn.functional.interpolate(x, size=DIGITS_SIZE, mode="bilinear", align_corners=False)
    x = (x.clamp(0, 1) * 255).round().to(torch.uint8).expand(-1, 3, -1, -1).contiguous()
    idx = np.arange(len(d.target))
    tr, te = train_test_split(idx, test_size=0.2, random_state=0, stratify=d.target)
    pick = np.sort(tr if split == "train" else te)
    images, labels = x[pick], torch.from_numpy(d.target[pick].astype(np.int64))
    mean, std = _channel_stats(x[np.sort(tr)])
    return ImageSet("digits", images, labels, [str(i) for i in range(10)], mean, std)


# The binary releases (fixed-size records), read with numpy: the python releases are pickles, which lpq
# never loads. (URL, md5, folder, train files, test file, label bytes per record, class-name file)
_CIFAR = {
    "cifar10": ("https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz", "c32a1d4ab5d03f1284b67883e8d87530",
                "cifar-10-batches-bin", [f"data_batch_{i}.bin" for i in range(1, 6)], "test_batch.bin", 1,
                "batches.meta.txt"),
    "cifar100": ("https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz", "03b5dce01913d631647c71ecec9e9cb8",
                 "cifar-100-binary", ["train.bin"], "test.bin", 2, "fine_label_names.txt"),
}


def _cifar(kind: str, split: str, root: Path, download: bool) -> ImageSet:
    url, md5, folder, train_files, test_file, label_bytes, names_file = _CIFAR[kind]
    base = root / folder
    if not base.is_dir():
        if not download:
            raise LpqError("data-not-found", f"{kind} (binary version) not found under {root}",
                           "pass --download to fetch it, or --root pointing at the folder holding " + folder)
        from torchvision.datasets.utils import download_and_extract_archive

        download_and_extract_archive(url, str(root), md5=md5)
    record = label_bytes + 3 * 32 * 32
    labels, images = [], []
    for name in train_files if split == "train" else [test_file]:
        path = base / name
        if not path.is_file() or path.stat().st_size % record:
            raise LpqError("data-bad-image", f"{path} is missing or not a CIFAR binary batch")
        raw = np.fromfile(path, np.uint8).reshape(-1, record)
        labels.append(raw[:, label_bytes - 1].astype(np.int64))  # CIFAR-100: the fine label is the second byte
        images.append(raw[:, label_bytes:].reshape(-1, 3, 32, 32))
    classes = [c for c in (base / names_file).read_text().splitlines() if c.strip()]
    return ImageSet(kind, torch.from_numpy(np.concatenate(images)), torch.from_numpy(np.concatenate(labels)),
                    classes, *_STATS[kind])


def _split_dir(path: Path, split: str) -> Path:
    names = ("train",) if split == "train" else ("val", "test")
    for n in names:
        if (path / n).is_dir():
            return path / n
    if _class_dirs(path):  # a bare set of class folders, as `lpq synth` writes
        return path
    raise LpqError("data-no-split", f"{path} has no {' or '.join(names)}/ folder of class folders")


def _class_dirs(path: Path) -> list[Path]:
    return sorted((p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")), key=lambda p: p.name)


def _image_folder(path: Path, split: str) -> ImageSet:
    from PIL import Image, UnidentifiedImageError

    folder = _split_dir(path, split)
    classes = _class_dirs(folder)
    if not classes:
        raise LpqError("data-no-classes", f"{folder} holds no class folders")
    files, labels = [], []
    for i, c in enumerate(classes):
        found = sorted(p for p in c.iterdir() if p.suffix.lower() in _IMAGE_SUFFIXES)
        if not found:
            raise LpqError("data-empty-class", f"class folder {c} holds no images")
        files += found
        labels += [i] * len(found)

    def read(p: Path) -> np.ndarray:
        try:
            with Image.open(p) as im:
                return np.asarray(im.convert("RGB"))
        except (OSError, UnidentifiedImageError) as e:
            raise LpqError("data-bad-image", f"cannot read image {p} ({e})") from None

    with ThreadPoolExecutor(max_workers=4) as pool:
        arrays = list(pool.map(read, files, chunksize=256))
    shapes = {a.shape for a in arrays}
    if len(shapes) != 1:
        raise LpqError("data-mixed-sizes", f"{folder} mixes image sizes {sorted(shapes)[:3]}",
                       "resize the images to one size first")
    images = torch.from_numpy(np.stack(arrays).transpose(0, 3, 1, 2).copy())
    # Statistics of this split; models normalize with the teacher's (training-split) statistics anyway.
    mean, std = _channel_stats(images)
    return ImageSet(f"imagefolder:{path}", images, torch.tensor(labels), [c.name for c in classes], mean, std)


def _channel_stats(images: torch.Tensor) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    step = max(1, len(images) // _STATS_SAMPLE)
    x = images[::step].double() / 255.0
    mean = x.mean(dim=(0, 2, 3)).tolist()
    std = x.std(dim=(0, 2, 3)).tolist()
    return (mean[0], mean[1], mean[2]), (std[0], std[1], std[2])
