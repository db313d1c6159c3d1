"""The counter-based generator that derives every per-sample augmentation of a `.lpql` file.

A stored batch keeps no crop boxes, flips or image indices: they are recomputed from
(seed, epoch, batch, sample) by the algorithms below, which spec/lpql-v1.md section 6 defines bit for bit
with test vectors. Nothing here draws from a library RNG stream (numpy's, torch's), because those may change
between versions and a label would then silently belong to another crop. The only floating-point
operations are IEEE-754 binary64 +, -, *, /, sqrt (correctly rounded everywhere) plus one log and one exp
per crop attempt; each batch chunk stores a CRC-32 of its derived augmentation table, so a reader whose libm
rounds differently is told so instead of training on a wrong crop.

Not for: the per-batch CutMix/MixUp draws, which the writer samples however it likes and stores.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from isal.isal_zlib import crc32

from lpq.format.header import Augment

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_C1 = np.uint64(0xBF58476D1CE4E5B9)
_C2 = np.uint64(0x94D049BB133111EB)
_MASK = (1 << 64) - 1

# Domain tags keep the streams of different purposes apart (spec 6.2).
TAG_EPOCH_ORDER = 1
TAG_SAMPLE_AUG = 2
TAG_MIX_ORDER = 3

# Counters per sample in the augmentation stream: 10 crop attempts x 4 draws, then the flip draw (spec 6.4).
_CROP_ATTEMPTS = 10
_DRAWS_PER_SAMPLE = 64
_FLIP_DRAW = 40


def mix64(z: np.ndarray) -> np.ndarray:
    """SplitMix64's output function applied to (z + golden): a bijection of uint64, elementwise."""
    with np.errstate(over="ignore"):
        z = z.astype(np.uint64) + _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * _C1
        z = (z ^ (z >> np.uint64(27))) * _C2
        return z ^ (z >> np.uint64(31))


def _mix64_int(z: int) -> int:
    return int(mix64(np.array([z & _MASK], dtype=np.uint64))[0])


def derive_key(seed: int, *words: int) -> int:
    """Key of a stream: k = mix64(seed); for each word w: k = mix64(k XOR w)."""
    k = _mix64_int(seed)
    for w in words:
        k = _mix64_int(k ^ (w & _MASK))
    return k


def draws(key: int, counters: np.ndarray) -> np.ndarray:
    """The uint64 draws of a stream at the given counters: mix64(key XOR mix64(counter))."""
    return mix64(np.uint64(key) ^ mix64(counters.astype(np.uint64)))


def uniforms(key: int, counters: np.ndarray) -> np.ndarray:
    """Doubles in [0, 1): the top 53 bits of each draw times 2**-53 (exact)."""
    return (draws(key, counters) >> np.uint64(11)).astype(np.float64) * (2.0**-53)


def epoch_order(seed: int, epoch: int, num_images: int) -> np.ndarray:
    """The epoch's shuffle: image indices sorted by their draw (stable, ascending). (N,) int64."""
    keys = draws(derive_key(seed, TAG_EPOCH_ORDER, epoch), np.arange(num_images, dtype=np.uint64))
    return np.argsort(keys, kind="stable")


def mix_order(seed: int, epoch: int, batch: int, size: int) -> np.ndarray:
    """The batch's CutMix/MixUp partner permutation, derived like the epoch shuffle. (B,) int64."""
    keys = draws(derive_key(seed, TAG_MIX_ORDER, epoch, batch), np.arange(size, dtype=np.uint64))
    return np.argsort(keys, kind="stable")


@dataclass(frozen=True)
class CropSpec:
    """RandomResizedCrop's parameters, as in torchvision: area fraction and aspect-ratio ranges."""

    scale: tuple[float, float]
    ratio: tuple[float, float]
    flip_p: float

    @classmethod
    def of(cls, augment: Augment) -> CropSpec:
        """The crop parameters a header's augmentation record names."""
        return cls(augment.crop_scale, augment.crop_ratio, augment.flip_p)


@dataclass(frozen=True)
class SampleAugment:
    """Derived per-sample augmentation of one batch: crop boxes in integer pixels and flips."""

    top: np.ndarray  # (B,) int32
    left: np.ndarray  # (B,) int32
    height: np.ndarray  # (B,) int32
    width: np.ndarray  # (B,) int32
    flip: np.ndarray  # (B,) bool

    def table(self) -> np.ndarray:
        """(B, 5) int32 rows of top, left, height, width, flip: the bytes the chunk's aug CRC covers."""
        return np.stack([self.top, self.left, self.height, self.width, self.flip.astype(np.int32)], axis=1)

    def crc32(self) -> int:
        return crc32(self.table().astype("<i4").tobytes())


def sample_augment(seed: int, epoch: int, batch: int, image_hw: np.ndarray, spec: CropSpec) -> SampleAugment:
    """Crop box and flip of every sample of batch (epoch, batch); image_hw is (B, 2) source heights/widths.

    Follows torchvision's RandomResizedCrop.get_params: up to 10 attempts of (area fraction uniform in scale,
    log aspect uniform in log ratio), w = round(sqrt(area*aspect)), h = round(sqrt(area/aspect)) (round half
    to even), accepted when 0 < w <= W and 0 < h <= H, then top = floor(u*(H-h+1)), left = floor(u*(W-w+1));
    a central crop clamped to the ratio range when no attempt fits.
    """
    n = image_hw.shape[0]
    key = derive_key(seed, TAG_SAMPLE_AUG, epoch, batch)
    base = np.arange(n, dtype=np.uint64)[:, None] * np.uint64(_DRAWS_PER_SAMPLE)
    attempt = np.arange(_CROP_ATTEMPTS, dtype=np.uint64)[None, :] * np.uint64(4)
    u_area, u_ratio, u_top, u_left = (uniforms(key, base + attempt + np.uint64(d)) for d in range(4))  # (B, 10)
    h_img = image_hw[:, 0:1].astype(np.float64)
    w_img = image_hw[:, 1:2].astype(np.float64)
    area = h_img * w_img * (spec.scale[0] + (spec.scale[1] - spec.scale[0]) * u_area)
    log_lo, log_hi = math.log(spec.ratio[0]), math.log(spec.ratio[1])
    aspect = np.exp(log_lo + (log_hi - log_lo) * u_ratio)
    w = np.rint(np.sqrt(area * aspect))
    h = np.rint(np.sqrt(area / aspect))
    ok = (w > 0) & (w <= w_img) & (h > 0) & (h <= h_img)
    first = np.argmax(ok, axis=1)
    rows = np.arange(n)
    found = ok[rows, first]
    w, h = w[rows, first], h[rows, first]
    top = np.floor(u_top[rows, first] * (h_img[:, 0] - h + 1))
    left = np.floor(u_left[rows, first] * (w_img[:, 0] - w + 1))

    # Fallback: whole image, clamped to the ratio range, centred (torchvision's rule).
    in_ratio = w_img[:, 0] / h_img[:, 0]
    fw = np.where(in_ratio > spec.ratio[1], np.rint(h_img[:, 0] * spec.ratio[1]), w_img[:, 0])
    fh = np.where(in_ratio < spec.ratio[0], np.rint(w_img[:, 0] / spec.ratio[0]), h_img[:, 0])
    w = np.where(found, w, fw)
    h = np.where(found, h, fh)
    top = np.where(found, top, (h_img[:, 0] - fh) // 2)
    left = np.where(found, left, (w_img[:, 0] - fw) // 2)

    flip = uniforms(key, base[:, 0] + np.uint64(_FLIP_DRAW)) < spec.flip_p
    top, left, h, w = (a.astype(np.int32) for a in (top, left, h, w))
    return SampleAugment(top, left, h, w, flip)
