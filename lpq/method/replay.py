"""The augmented batch behind a stored label: planned by `relabel`, rebuilt by `train`, one code path.

A batch's plan is its image indices, each sample's crop box and flip (derived from the seed, see
spec/lpql-v1.md section 6), and the batch's mix draw (CutMix box or MixUp weight, stored in the chunk).
``render`` turns a plan and the source images into the exact input tensor the teacher labelled; relabel
calls it to produce labels and training calls it to consume them, so the two cannot drift. A student may see
the same views at a resolution of its own (``size``): each crop box is resized to that size instead of the
teacher's, and the CutMix box, stored in the teacher's pixels, is scaled to it (``scale_box``), so a 224 px
teacher's labels train a 32 px student on the same content.

Not for: pixel normalization (the caller's model decides) or targets (lpq.method.targets).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from lpq.data import ImageSource, InputSpec
from lpq.errors import LpqError
from lpq.format import BatchRecord, Header, LpqlReader
from lpq.format.rng import CropSpec, SampleAugment, derive_key, epoch_order, mix_order, sample_augment

TAG_MIX_DRAW = 4  # the writer's stream for lambda and the CutMix box (stored, so any generator would do)


@dataclass(frozen=True)
class BatchPlan:
    epoch: int
    batch: int
    image_indices: np.ndarray  # (B,) positions in the image set
    augment: SampleAugment
    mix_lambda: float
    mix_box: tuple[int, int, int, int]  # top, left, bottom, right in the input_size image
    partner: np.ndarray  # (B,) the sample each sample is mixed with

    @property
    def size(self) -> int:
        return len(self.image_indices)


def view_input(header: Header, size: int | None = None) -> InputSpec:
    """How replayed views (and the real test images) are prepared for a model at side ``size``: the teacher's
    preparation at that size, or at the teacher's own size when none is given."""
    return header.augment.input().at_size(size or header.augment.input_size)


def plan_batch(
    header: Header, epoch: int, batch: int, image_hw: np.ndarray, order: np.ndarray | None = None
) -> BatchPlan:
    """Everything random about batch (epoch, batch), as relabel draws it. image_hw: (N, 2) source sizes."""
    r, a = header.relabel, header.augment
    if order is None:
        order = epoch_order(r.seed, epoch, header.images.count)
    idx = order[batch * r.batch_size : (batch + 1) * r.batch_size]
    aug = sample_augment(r.seed, epoch, batch, image_hw[idx], CropSpec.of(header.augment))
    lam, box = 1.0, (0, 0, 0, 0)
    if a.mix != "none":
        gen = np.random.Generator(np.random.Philox(key=derive_key(r.seed, TAG_MIX_DRAW, epoch, batch)))
        lam = float(gen.beta(a.mix_alpha, a.mix_alpha))
        if a.mix == "cutmix":
            box = cutmix_box(lam, a.input_size, gen)
            s = a.input_size
            lam = 1.0 - (box[2] - box[0]) * (box[3] - box[1]) / (s * s)
    return BatchPlan(epoch, batch, idx, aug, float(np.float32(lam)), box, mix_order(r.seed, epoch, batch, len(idx)))


def cutmix_box(lam: float, size: int, gen: np.random.Generator) -> tuple[int, int, int, int]:
    """The CutMix box of the authors' code: side sqrt(1 - lam) of the image, centred uniformly, clipped."""
    cut = int(size * math.sqrt(1.0 - lam))
    cy, cx = int(gen.integers(size)), int(gen.integers(size))
    top, bottom = max(cy - cut // 2, 0), min(cy + cut // 2, size)
    left, right = max(cx - cut // 2, 0), min(cx + cut // 2, size)
    return top, left, bottom, right


def stored_plan(reader: LpqlReader, rec: BatchRecord, image_hw: np.ndarray) -> BatchPlan:
    """The plan of a stored batch, derived from the file and checked against its augmentation CRC."""
    idx = reader.image_indices(rec)
    aug = reader.augment(rec, image_hw[idx])
    partner = mix_order(reader.header.relabel.seed, rec.epoch, rec.batch, rec.size)
    return BatchPlan(rec.epoch, rec.batch, idx, aug, rec.mix_lambda, rec.mix_box, partner)


def scale_box(box: tuple[int, int, int, int], size: int, to: int) -> tuple[int, int, int, int]:
    """A (top, left, bottom, right) box in a ``size`` px image, in a ``to`` px one: each edge rounded to the nearest
    pixel (halves up), so the box covers the same share of the image within half a pixel per edge."""
    return tuple((2 * v * to + size) // (2 * size) for v in box)  # type: ignore[return-value]


def render(plan: BatchPlan, images: ImageSource, header: Header, size: int | None = None) -> torch.Tensor:
    """The augmented batch in [0, 1]: crop, resize to S, flip, then CutMix or MixUp. (B, 3, S, S).

    S is the teacher's input size, or ``size`` for a student at its own resolution. Each sample's crop is cut
    from its source image at full resolution (any size), one image at a time.
    """
    a = header.augment
    s = size or a.input_size
    mode = a.interpolation
    aug = plan.augment
    out = torch.empty(plan.size, 3, s, s)
    for i, src in enumerate(plan.image_indices.tolist()):
        top, left, h, w = int(aug.top[i]), int(aug.left[i]), int(aug.height[i]), int(aug.width[i])
        crop = images.load(src)[:, top : top + h, left : left + w].float().div_(255.0)[None]
        resized = F.interpolate(
            crop,
            size=(s, s),
            mode=mode,
            antialias=mode != "nearest",
            **({} if mode == "nearest" else {"align_corners": False}),
        )
        out[i] = resized[0].flip(-1) if aug.flip[i] else resized[0]
    out.clamp_(0.0, 1.0)
    partner = torch.from_numpy(plan.partner)
    if a.mix == "cutmix":
        top, left, bottom, right = scale_box(plan.mix_box, a.input_size, s)
        out[:, :, top:bottom, left:right] = out[partner][:, :, top:bottom, left:right]
    elif a.mix == "mixup":
        out = plan.mix_lambda * out + (1.0 - plan.mix_lambda) * out[partner]
    return out


def check_images(source: ImageSource, header: Header, labels: object, images: object) -> None:
    """Refuse images other than those the labels were relabelled from (their content fingerprint differs): a
    label is replayed on the crop of its own image, so any other image set would get silently wrong labels."""
    if source.fingerprint() != header.images.fingerprint:
        raise LpqError(
            "fingerprint-mismatch",
            f"{labels} was made for other images than {images}",
            "pass the image set the labels were relabelled from",
        )
