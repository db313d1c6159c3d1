"""The datasets known by name: scikit-learn's digits and the CIFAR binary releases, held in memory."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from lpq.data.sources import ImageSet
from lpq.errors import LpqError

# Per-channel statistics of the training splits (the values the CIFAR literature uses).
_STATS = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
}
DIGITS_SIZE = 16  # digits are 8x8; upsampled to a size every model here takes, small enough for CPU tests
STATS_SAMPLE = 5000  # images used to estimate an image folder's normalization statistics
NAMED = ("digits", "cifar10", "cifar100")


def named_split(kind: str, split: str, root: Path | None, download: bool) -> ImageSet:
    if kind == "digits":
        return _digits(split)
    return _cifar(kind, split, root or Path("data"), download)


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
    mean, std = channel_stats(x[np.sort(tr)])
    return ImageSet("digits", images, labels, [str(i) for i in range(10)], mean, std)


# The binary releases (fixed-size records), read with numpy: the python releases are pickles, which lpq
# never loads. (URL, md5, folder, train files, test file, label bytes per record, class-name file)
_CIFAR = {
    "cifar10": (
        "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",
        "c32a1d4ab5d03f1284b67883e8d87530",
        "cifar-10-batches-bin",
        [f"data_batch_{i}.bin" for i in range(1, 6)],
        "test_batch.bin",
        1,
        "batches.meta.txt",
    ),
    "cifar100": (
        "https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz",
        "03b5dce01913d631647c71ecec9e9cb8",
        "cifar-100-binary",
        ["train.bin"],
        "test.bin",
        2,
        "fine_label_names.txt",
    ),
}


def _cifar(kind: str, split: str, root: Path, download: bool) -> ImageSet:
    url, md5, folder, train_files, test_file, label_bytes, names_file = _CIFAR[kind]
    base = root / folder
    if not base.is_dir():
        if not download:
            raise LpqError(
                "data-not-found",
                f"{kind} (binary version) not found under {root}",
                "pass --download to fetch it, or --root pointing at the folder holding " + folder,
            )
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
    return ImageSet(
        kind, torch.from_numpy(np.concatenate(images)), torch.from_numpy(np.concatenate(labels)), classes, *_STATS[kind]
    )


def channel_stats(images: torch.Tensor) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    step = max(1, len(images) // STATS_SAMPLE)
    x = images[::step].double() / 255.0
    mean = x.mean(dim=(0, 2, 3)).tolist()
    std = x.std(dim=(0, 2, 3)).tolist()
    return (mean[0], mean[1], mean[2]), (std[0], std[1], std[2])
