"""The SRe2L / LPLD / LPQLD label layout: one `torch.save` list per stored batch and a JSON batch map.

As the authors' relabel script writes it (and their training script reads it), a folder holds
``batch_<n>.tar`` for n = 0, 1, ... and ``sampler_indices_batch.json`` mapping ``str(n)`` to the batch's
image indices (positions in the ImageFolder order, which is `lpq.data`'s). Each batch file is a list:

    [coords (B, 4) float16: top/H, left/W, height/H, width/W of each crop,
     flips (B,) bool,
     mix index (B,) uint8 (the sample each sample is mixed with) or None,
     mix lambda (float) or None,
     CutMix box [4 x uint8 tensor: top, left, bottom, right in the crop] or None,
     logits (B, C) float16, or with MR-k: top-k logits (B, k) float16, then their classes (B, k) int16]

Their loader replays a crop with PIL, which rounds the box's corners: top = round(top/H * H) and bottom
= round(top/H * H + height/H * H) with the stored float16 fractions; importing computes the same integer
boxes. The layout cannot hold batches over 256 samples with mixing (uint8 permutation) or CutMix boxes in
crops over 255 pixels (uint8 corners); export refuses those. Reading uses ``torch.load(weights_only=True)``
only: a file that needs anything else is refused, never unpickled.
"""

from __future__ import annotations

import json
import math
import pickle  # for its exception type only: nothing here unpickles freely
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from lpq.errors import LpqError
from lpq.format import BatchRecord, LpqlReader, StoredAugment
from lpq.format.rng import SampleAugment

MAP = "sampler_indices_batch.json"
UINT8_LIMIT = 256  # their mix index and CutMix corners are uint8


def batch_path(folder: Path, n: int) -> Path:
    return folder / f"batch_{n}.tar"


# --- export --------------------------------------------------------------------------------------------------


def export_batch(reader: LpqlReader, rec: BatchRecord, image_hw: np.ndarray) -> tuple[list, list[int]]:
    """A stored batch as the authors' list, and its image indices. ``image_hw``: (N, 2) source image sizes."""
    h = reader.header
    idx = reader.image_indices(rec)
    hw = image_hw[idx].astype(np.float64)
    aug = reader.augment(rec, image_hw[idx])
    coords = np.stack([aug.top / hw[:, 0], aug.left / hw[:, 1], aug.height / hw[:, 0], aug.width / hw[:, 1]], axis=1)
    mix = h.augment.mix
    partner = rec.stored.partner if rec.stored is not None else _derived_partner(reader, rec)
    batch = [
        torch.from_numpy(coords).half(),
        torch.from_numpy(aug.flip.copy()),
        None if mix == "none" else torch.from_numpy(partner.astype(np.uint8)),
        None if mix == "none" else float(rec.mix_lambda),
        [torch.tensor(v, dtype=torch.uint8) for v in rec.mix_box] if mix == "cutmix" else None,
    ]
    if h.quant.scheme == "none":
        batch.append(torch.from_numpy(rec.values).half())
    else:
        batch += [torch.from_numpy(rec.values).half(), torch.from_numpy(rec.indices.astype(np.int16))]  # type: ignore[union-attr]
    return batch, idx.tolist()


def _derived_partner(reader: LpqlReader, rec: BatchRecord) -> np.ndarray:
    from lpq.format.rng import mix_order

    return mix_order(reader.header.relabel.seed, rec.epoch, rec.batch, rec.size)


def check_exportable(reader: LpqlReader) -> None:
    h = reader.header
    unsupported = {
        "ms": "MS-k labels (their loader reads logits)",
        "tail": "tail points",
        "sampled": "sampled labels",
        "basis": "basis of the logits",
    }
    if h.quant.scheme in unsupported:
        held = unsupported[h.quant.scheme] + ("" if h.quant.scheme == "ms" else " (their loader reads a top-k)")
        raise LpqError("export-unsupported", f"the authors' layout has no {held}", "export the full or MR-k labels")
    if h.augment.mix != "none" and h.relabel.batch_size > UINT8_LIMIT:
        raise LpqError(
            "export-unsupported",
            f"batches of {h.relabel.batch_size} samples do not fit the layout's uint8 mix index (at most 256)",
        )
    if h.augment.mix == "cutmix" and h.augment.input_size >= UINT8_LIMIT:
        raise LpqError(
            "export-unsupported",
            f"CutMix boxes in {h.augment.input_size} px crops do not fit the layout's uint8 corners (at most 255 px)",
        )
    if h.num_classes > np.iinfo(np.int16).max + 1:
        raise LpqError("export-unsupported", f"{h.num_classes} classes do not fit the layout's int16 indices")


# --- import --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TheirBatch:
    """One of their batch files, parsed and checked."""

    image_indices: np.ndarray  # (B,)
    coords: np.ndarray  # (B, 4) float64 from float16
    flips: np.ndarray  # (B,) bool
    partner: np.ndarray | None  # (B,)
    lam: float | None
    box: tuple[int, int, int, int] | None
    values: np.ndarray  # (B, C) or (B, k) float32
    indices: np.ndarray | None  # (B, k) int64
    precision: str  # their logits' dtype: "float16" (the authors' default) or "float32" (their --no-fp16 runs)

    @property
    def mix(self) -> str:
        return "cutmix" if self.box is not None else "mixup" if self.lam is not None else "none"


def read_map(folder: Path) -> dict[int, list[int]]:
    path = folder / MAP
    try:
        raw = json.loads(path.read_text())
        batches = {int(k): [int(i) for i in v] for k, v in raw.items()}
    except (OSError, ValueError, TypeError, AttributeError) as e:
        raise LpqError("import-bad-folder", f"{path} is missing or not the authors' batch map ({e})") from None
    if not batches:
        raise LpqError("import-bad-folder", f"{path} lists no batches")
    if sorted(batches) != list(range(len(batches))):
        raise LpqError("import-bad-folder", f"{path} does not number its batches 0, 1, ... without gaps")
    return batches


def load_batch(path: Path) -> list:
    """A batch file through ``torch.load(weights_only=True)``; anything needing more is refused."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise LpqError(
            "import-unsafe-or-corrupt",
            f"{path} cannot be read with torch.load(weights_only=True) ({first[:200]})",
            "lpq never unpickles arbitrary objects; re-save the labels as tensors",
        ) from None


def _scalar(value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, torch.Tensor):
        return float(value.reshape(-1)[0])
    return float(value)  # type: ignore[arg-type]


def parse_batch(path: Path, images: list[int], num_images: int, num_classes: int) -> TheirBatch:
    items = load_batch(path)
    if not isinstance(items, list) or len(items) not in (6, 7):
        raise LpqError(
            "import-bad-batch",
            f"{path} is not a 6- or 7-item list of the crop + flip layout",
            "RandAugment and ImageNet-21K cutout variants are not supported",
        )
    coords, flips, mix_index, lam, box, values, *rest = items
    b = len(images)
    if isinstance(mix_index, torch.Tensor) and mix_index.dtype == torch.uint8 and b > UINT8_LIMIT:
        raise LpqError(
            "import-wrapped-mix",
            f"{path}: {b} samples mixed by a uint8 index, which holds at most {UINT8_LIMIT} partners (it wrapped)",
            "the mixed inputs cannot be rebuilt: relabel with batches of at most 256, or without mixing",
        )
    try:
        coords = coords.double().numpy().reshape(b, 4)
        flips = flips.bool().numpy().reshape(b)
        partner = None if mix_index is None else mix_index.long().numpy().reshape(b)
        values = values.float().numpy()
        indices = rest[0].long().numpy() if rest else None
        box_t = None if box is None else tuple(int(v) for v in box)
    except (AttributeError, RuntimeError, ValueError, TypeError) as e:
        raise LpqError("import-bad-batch", f"{path}: fields of unexpected types or shapes ({e})") from None
    idx = np.asarray(images, np.int64)
    problem = _problem(idx, values, indices, partner, box_t, num_images, num_classes)
    if problem:
        raise LpqError("import-bad-batch", f"{path}: {problem}")
    precision = str(items[5].dtype).removeprefix("torch.")
    return TheirBatch(idx, coords, flips, partner, _scalar(lam), box_t, values, indices, precision)  # type: ignore[arg-type]


def _problem(
    idx: np.ndarray,
    values: np.ndarray,
    indices: np.ndarray | None,
    partner: np.ndarray | None,
    box: tuple[int, ...] | None,
    num_images: int,
    num_classes: int,
) -> str:
    """What is wrong with a parsed batch, checked in an order where each check may rely on the ones before."""
    b = len(idx)
    if b == 0 or values.ndim != 2 or len(values) != b:
        return f"labels of shape {tuple(values.shape)} for {b} images"
    if idx.min() < 0 or idx.max() >= num_images:
        return f"an image index outside the {num_images} images"
    if indices is None and values.shape[1] != num_classes:
        return f"{values.shape[1]} logits for {num_classes} classes"
    if indices is not None and (indices.shape != values.shape or indices.min() < 0 or indices.max() >= num_classes):
        return "top-k classes of another shape than their logits, or outside the classes"
    if partner is not None and (partner.min() < 0 or partner.max() >= b):
        return "a mix index outside the batch"
    if box is not None and len(box) != 4:
        return "a CutMix box without 4 corners"
    return ""


def pil_boxes(coords: np.ndarray, hw: np.ndarray) -> SampleAugment:
    """Integer crops as their PIL replay takes them: corners rounded from the float16 fractions, in the image."""
    h, w = hw[:, 0].astype(np.float64), hw[:, 1].astype(np.float64)
    top_f, left_f = coords[:, 0] * h, coords[:, 1] * w
    top = np.array([round(v) for v in top_f])
    left = np.array([round(v) for v in left_f])
    bottom = np.minimum([round(v) for v in top_f + coords[:, 2] * h], h)
    right = np.minimum([round(v) for v in left_f + coords[:, 3] * w], w)
    top, left = np.clip(top, 0, h - 1), np.clip(left, 0, w - 1)
    height, width = np.maximum(bottom - top, 1), np.maximum(right - left, 1)
    return SampleAugment(*(a.astype(np.int32) for a in (top, left, height, width)), np.zeros(len(h), bool))


def to_record(batch: TheirBatch, n: int, bpe: int, image_hw: np.ndarray, input_size: int, scheme: str) -> BatchRecord:
    """Their batch n as an `lpq` record with stored augmentation (global batch id n)."""
    crops = pil_boxes(batch.coords, image_hw[batch.image_indices])
    aug = SampleAugment(crops.top, crops.left, crops.height, crops.width, batch.flips)
    size = len(batch.image_indices)
    partner = batch.partner if batch.partner is not None else np.arange(size)
    lam, box = 1.0, (0, 0, 0, 0)
    if batch.box is not None:
        top, left, bottom, right = batch.box
        if min(top, left) < 0 or max(bottom, right) > input_size:
            raise LpqError(
                "import-box-outside",
                f"batch {n}: CutMix box {tuple(batch.box)} lies outside the {input_size} px crop",
                "pass the --input-size their code cropped at",
            )
        box = (top, left, bottom, right)
        lam = 1.0 - (bottom - top) * (right - left) / (input_size * input_size)
    elif batch.lam is not None:
        lam = batch.lam
    values, indices = batch.values, batch.indices
    if scheme == "mr" and indices is not None:  # descending by logit, as the format orders top-k
        order = np.argsort(-values, axis=1, kind="stable")
        values, indices = np.take_along_axis(values, order, 1), np.take_along_axis(indices, order, 1)
    stored = StoredAugment(batch.image_indices, aug, partner.astype(np.int64))
    return BatchRecord(
        n // bpe, n % bpe, aug.crc32(), float(np.float32(lam)), box, values.astype(np.float32), indices, stored
    )


def their_batches(folder: Path, num_images: int, num_classes: int) -> Iterator[tuple[int, TheirBatch]]:
    for n, images in read_map(folder).items():
        yield n, parse_batch(batch_path(folder, n), images, num_images, num_classes)


def unlisted(folder: Path, listed: int) -> list[str]:
    """Batch files the map does not list (their reader never opens them either)."""
    names = (p.name for p in folder.glob("batch_*.tar"))
    return sorted((n for n in names if not n[6:-4].isdigit() or int(n[6:-4]) >= listed), key=lambda n: (len(n), n))


def ambiguous_starts(maps: list[list[int]]) -> tuple[int, int, tuple[int, ...]] | None:
    """Two batches their reader cannot tell apart: it finds a batch by its first three image indices. The first
    such pair (n, m, the three indices), or None."""
    seen: dict[tuple[int, ...], int] = {}
    for n, images in enumerate(maps):
        key = tuple(images[:3])
        if key in seen:
            return seen[key], n, key
        seen[key] = n
    return None


def epochs_for(batches: int, per_epoch: int) -> int:
    return max(1, math.ceil(batches / per_epoch))
