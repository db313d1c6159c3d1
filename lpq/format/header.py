"""The `.lpql` header and calibration records: pydantic models, validated on every read and write.

The JSON forms of these models are the HEAD and calb chunk payloads (spec/lpql-v1.md section 4). Unknown
fields are ignored, so a reader of minor version 0 reads a file of minor version 1 that added fields.
"""

from __future__ import annotations

import itertools
import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from lpq.format.inputs import InputSpec, ResizeRule

FORMAT_MAJOR = 1
FORMAT_MINOR = 6

# 1.5: "tail" (MR-k and the sorted rest of the logits at a few ranks) and "sampled" (k classes drawn from the
# teacher's softmax, weighted at decode time); an older reader refuses the values
Scheme = Literal["none", "mr", "ms", "tail", "sampled", "basis"]
ValueKind = Literal["f32", "f16", "i8", "i4"]
# 1.2: the same encodings laid out sample-major, new ids so that a 1.0/1.1 reader refuses what it would misread
ValueCodecId = Literal["f32", "f16", "i8", "i4", "f32-by-sample", "f16-by-sample", "i8-by-sample", "i4-by-sample"]
BY_SAMPLE = "-by-sample"
BY_SAMPLE_MIN_K = 32  # where sorted top-k rows start to compress better by sample than by rank
MixKind = Literal["cutmix", "mixup", "none"]
KeepStrategy = Literal["cover", "first", "random"]  # which batches pruning keeps (lpq.method.pruning)
DEFAULT_KEEP: KeepStrategy = "cover"
# 1.4: "cover" (whole epochs first, so every image is labelled); an older reader refuses the value
PruneStrategy = Literal["none"] | KeepStrategy
Interpolation = Literal["bilinear", "bicubic", "nearest"]
ScheduleKind = Literal["none", "step", "cosine", "reverse-step", "reverse-cosine"]


class _Record(BaseModel):
    # A crafted file can hold any JSON number: NaN and infinity are refused everywhere (header validation).
    model_config = ConfigDict(extra="ignore", frozen=True, allow_inf_nan=False)


class ImageSet(_Record):
    """The images the labels belong to, in the order `lpq.data` lists them (spec 6.1)."""

    fingerprint: str = Field(pattern=r"^[0-9a-f]{64}$", description="sha256 over the image set (lpq.data)")
    count: int = Field(ge=1)
    height: int = Field(ge=0, description="source image height in pixels when all images share it, else 0")
    width: int = Field(ge=0, description="likewise the width")


class Teacher(_Record):
    architecture: str
    weights_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    precision: Literal["float32", "bf16", "fp16"] = Field(
        "float32", description="1.1: the teacher's autocast precision"
    )


ABSENT_MEAN, ABSENT_STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)  # spec section 4: an augment without mean and std


class Augment(_Record):
    """Per-sample and per-batch augmentation settings; defaults are the authors' relabel settings."""

    input_size: int = Field(ge=1, description="side of the square crop fed to the teacher, pixels")
    crop_scale: tuple[float, float] = (0.08, 1.0)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    interpolation: Interpolation = "bilinear"
    flip_p: float = Field(0.5, ge=0.0, le=1.0)
    mix: MixKind = "cutmix"
    mix_alpha: float = Field(1.0, gt=0.0, description="Beta(alpha, alpha) for the mixing weight")
    mean: tuple[float, float, float] | None = Field(None, description="per-channel normalization the teacher saw")
    std: tuple[float, float, float] | None = None
    eval_resize: ResizeRule = Field(
        "none", description="1.1: how real images are prepared for the teacher (and a student's evaluation)"
    )
    eval_crop_fraction: float = Field(0.875, gt=0.0, le=1.0, description="1.1: center-crop: S / resized shorter side")
    stored: bool = Field(
        False,
        description="1.1: image indices, crops, flips and mix partners are stored per batch "
        "(BTCS chunks, for imported labels) instead of derived from the seed",
    )

    @model_validator(mode="after")
    def _ranges(self) -> Augment:
        lo, hi = self.crop_scale
        if not 0.0 < lo <= hi <= 1.0:
            raise ValueError(f"crop_scale {self.crop_scale} must satisfy 0 < lo <= hi <= 1")
        lo, hi = self.crop_ratio
        if not 0.0 < lo <= hi:
            raise ValueError(f"crop_ratio {self.crop_ratio} must satisfy 0 < lo <= hi")
        if self.std is not None and min(self.std) <= 0.0:
            raise ValueError(f"std {self.std} must be positive (pixels are divided by it)")
        if self.mean is not None and not all(0.0 <= m <= 1.0 for m in self.mean):
            raise ValueError(f"mean {self.mean} must lie in [0, 1], the range of the rendered pixels")
        return self

    @classmethod
    def of(cls, spec: InputSpec, **augmentation: object) -> Augment:
        """The table of views made for a teacher that prepares its inputs as ``spec`` (its normalization and the
        evaluation geometry real images get); ``augmentation``: the crops, flips and mixing of the views."""
        return cls(
            mean=spec.mean, std=spec.std, eval_resize=spec.resize, eval_crop_fraction=spec.crop_fraction, **augmentation
        )  # type: ignore[arg-type]

    def input(self) -> InputSpec:
        """How the teacher prepared its inputs: the replayed views are normalized this way, and real images are
        prepared this way for a student's evaluation (nearest-neighbour crops are evaluated bilinear). A file
        without ``mean`` and ``std`` normalizes by the spec's defaults (ABSENT_MEAN, ABSENT_STD)."""
        return InputSpec(
            size=self.input_size,
            resize=self.eval_resize,
            crop_fraction=self.eval_crop_fraction,
            interpolation="bicubic" if self.interpolation == "bicubic" else "bilinear",
            mean=self.mean or ABSENT_MEAN,
            std=self.std or ABSENT_STD,
        )


class Relabel(_Record):
    epochs: int = Field(ge=1)
    batch_size: int = Field(ge=1, le=65535)
    batches_per_epoch: int = Field(ge=1)
    seed: int = Field(ge=0, lt=2**64)

    @property
    def total_batches(self) -> int:
        return self.epochs * self.batches_per_epoch


class Prune(_Record):
    """Which batches were labelled: ``kept`` holds global batch ids (epoch * batches_per_epoch + batch)."""

    ratio: float = Field(1.0, ge=1.0, description="total batches / kept batches, composed over prunings")
    strategy: PruneStrategy = "none"
    seed: int = Field(0, ge=0)
    kept: list[int]


class IndexCodec(_Record):
    """How class indices are stored: ``bitpack``, or (1.3) ``split``, for 9 to 16 bits: a plane of low bytes and
    the high bits packed after it (spec section 5.1)."""

    id: Literal["bitpack", "split"] = "bitpack"
    bits: int = Field(ge=1, le=32)

    @model_validator(mode="after")
    def _split_bits(self) -> IndexCodec:
        if self.id == "split" and not 9 <= self.bits <= 16:
            raise ValueError(f"split indices are 9 to 16 bits, not {self.bits}")
        return self

    @classmethod
    def for_classes(cls, num_classes: int) -> IndexCodec:
        """What writers store: ``split`` where its high bits fill whole bytes (9, 10, 12 or 16 bits, e.g. the
        10 of ImageNet-1K), which a table lookup decodes at about twice the speed of a bit gather
        (benchmarks/storage.py); ``bitpack`` otherwise, the same size."""
        bits = index_bits(num_classes)
        return cls(id="split" if split_by_table(bits) else "bitpack", bits=bits)


class ValueCodec(_Record):
    """How label values are stored; ``relative`` drops each row's maximum (a softmax ignores it)."""

    id: ValueCodecId
    relative: bool = False

    @classmethod
    def for_labels(cls, kind: ValueKind, scheme: Scheme, k: int, by_sample: bool | None = None) -> ValueCodec:
        """What a writer stores for `--values KIND`: integer logits relative to their row maximum, laid out
        sample-major unless ``by_sample`` says otherwise for full labels and for k >= BY_SAMPLE_MIN_K. Full labels'
        columns are classes, not ranks: zstd packs them as small either way, and they decode without a
        transpose. Long sorted top-k rows compress better by sample, short ones by rank (benchmarks/storage.py)."""
        by_sample = (scheme == "none" or k >= BY_SAMPLE_MIN_K) if by_sample is None else by_sample
        return cls(
            id=f"{kind}{BY_SAMPLE}" if by_sample else kind,
            relative=kind in ("i8", "i4") and scheme not in ("ms", "basis"),
        )

    @property
    def kind(self) -> ValueKind:
        return self.id.removesuffix(BY_SAMPLE)  # type: ignore[return-value]

    @property
    def by_sample(self) -> bool:
        return self.id.endswith(BY_SAMPLE)


# The code parameters a writer uses where none is given: one declaration for the format, the method, the stage
# configs and the command line.
DEFAULT_K = 10  # classes a top-k code keeps when no k is given (or all of them, where there are fewer)
MS_TEMPERATURE = 1.0  # MS: the softmax temperature of the kept probabilities (FKD's)
TAIL_POINTS = 4  # tail: points of the sorted rest per sample
SAMPLE_TEMPERATURE = 4.0  # sampled: the proposal temperature classes are drawn at
BASIS_RANK = 4  # basis: coefficients per sample on the file's basis of the logits


class Quant(_Record):
    scheme: Scheme = "none"
    k: int = Field(ge=1)
    values: ValueCodec
    indices: IndexCodec | None = None
    ms_temperature: float | None = Field(None, gt=0.0, description="softmax temperature of stored MS values")
    tail: int | None = Field(
        None, ge=2, le=255, description="1.5: points of the sorted logits outside the top k (scheme tail)"
    )
    sample_temperature: float | None = Field(
        None, gt=0.0, description="1.5: softmax temperature the classes of scheme sampled were drawn at"
    )
    rank: int | None = Field(
        None, ge=0, le=255, description="1.6: coefficients per sample on the file's basis (scheme basis)"
    )

    @classmethod
    def of(
        cls,
        scheme: Scheme,
        k: int,
        kind: ValueKind,
        num_classes: int,
        ms_temperature: float = MS_TEMPERATURE,
        tail: int = TAIL_POINTS,
        sample_temperature: float = SAMPLE_TEMPERATURE,
        rank: int = BASIS_RANK,
    ) -> Quant:
        """What a writer stores for a scheme, k and value kind: the codecs as `ValueCodec.for_labels` and
        `IndexCodec.for_classes` choose them, and only the parameters the scheme has."""
        return cls(
            scheme=scheme,
            k=k,
            values=ValueCodec.for_labels(kind, scheme, k),
            indices=None if scheme == "none" else IndexCodec.for_classes(num_classes),
            ms_temperature=ms_temperature if scheme == "ms" else None,
            tail=tail if scheme == "tail" else None,
            sample_temperature=sample_temperature if scheme == "sampled" else None,
            rank=rank if scheme == "basis" else None,
        )

    @property
    def name(self) -> str:
        """The scheme and its sizes as people write them: none, mr-10, ms-10, tail-10+4, sampled-10, basis-10+4."""
        extra = self.tail if self.tail is not None else self.rank
        sizes = "" if self.scheme == "none" else f"-{self.k}" + (f"+{extra}" if extra is not None else "")
        return self.scheme + sizes

    @property
    def columns(self) -> int:
        """Stored values per sample: the k kept ones, then (scheme tail) the tail points or (scheme basis) the
        coefficients."""
        return self.k + (self.tail or 0) + (self.rank or 0)


def tail_ranks(rest: int, points: int) -> list[int]:
    """Where scheme tail samples the ``rest`` sorted logits outside the top k (0: the largest of them), spec
    section 4.1: ``j - 1 + floor((rest - points + 1) ** (j / (points - 1)))`` for j = 0 .. points - 1, which
    runs from 0 to rest - 1, strictly increasing, and dense near the top of the tail, whose mass dominates at
    low temperatures. Integer arithmetic: the largest f with f ** (points - 1) <= m ** j."""
    m, d = rest - points + 1, points - 1
    ranks = []
    for j in range(points):
        target, f = m**j, round(math.exp(j * math.log(m) / d))  # m**j itself overflows a float at 255 points
        while f**d > target:
            f -= 1
        while (f + 1) ** d <= target:
            f += 1
        ranks.append(j - 1 + f)
    return ranks


class Header(_Record):
    format_version: str = f"{FORMAT_MAJOR}.{FORMAT_MINOR}"
    tool: str
    num_classes: int = Field(ge=2)
    class_names: list[str]
    images: ImageSet
    teacher: Teacher
    augment: Augment
    relabel: Relabel
    prune: Prune
    quant: Quant

    @model_validator(mode="after")
    def _consistent(self) -> Header:
        c, q, r = self.num_classes, self.quant, self.relabel
        if len(self.class_names) != c:
            raise ValueError(f"{len(self.class_names)} class names for {c} classes")
        if r.batches_per_epoch != math.ceil(self.images.count / r.batch_size):
            raise ValueError("batches_per_epoch must be ceil(images.count / batch_size)")
        kept = self.prune.kept
        if not kept or any(b <= a for a, b in itertools.pairwise(kept)) or kept[0] < 0 or kept[-1] >= r.total_batches:
            raise ValueError("prune.kept must be a non-empty, strictly increasing list of batch ids < total")
        if q.k > c:
            raise ValueError(f"quant.k={q.k} exceeds num_classes={c}")
        if q.scheme == "none":
            if q.k != c or q.indices is not None:
                raise ValueError("scheme 'none' stores all classes: k == num_classes and no indices codec")
        else:
            if q.indices is None or q.indices.bits < index_bits(c):
                raise ValueError(f"top-k schemes need an index codec of at least {index_bits(c)} bits")
        if (q.scheme == "ms") != (q.ms_temperature is not None):
            raise ValueError("ms_temperature is set exactly when scheme is 'ms'")
        if (q.scheme == "tail") != (q.tail is not None):
            raise ValueError("tail is set exactly when scheme is 'tail'")
        if (q.scheme == "sampled") != (q.sample_temperature is not None):
            raise ValueError("sample_temperature is set exactly when scheme is 'sampled'")
        if (q.scheme == "basis") != (q.rank is not None):
            raise ValueError("rank is set exactly when scheme is 'basis'")
        if q.scheme == "basis" and q.values.relative:
            raise ValueError("scheme basis stores coefficients beside its logits: its values are not relative")
        if q.tail is not None and c - q.k < q.tail:
            raise ValueError(f"{q.tail} tail points need at least as many classes outside the top k ({c - q.k})")
        if q.values.relative and (q.scheme == "ms" or q.values.kind not in ("i8", "i4")):
            raise ValueError("relative values are only for logits (scheme none/mr/tail/sampled) in i8/i4")
        return self

    def batch_size_of(self, batch_id: int) -> int:
        """Samples in a derived batch: batch_size, except the last batch of each epoch, which keeps the remainder.
        (A batch with stored augmentation holds the samples its chunk says, at most batch_size.)"""
        r = self.relabel
        b = batch_id % r.batches_per_epoch
        return min(r.batch_size, self.images.count - b * r.batch_size)


def split_by_table(bits: int) -> bool:
    """Whether ``split`` indices of this width decode by table lookup: their high bits fill whole bytes."""
    return 9 <= bits <= 16 and 8 % (bits - 8) == 0


def index_bits(num_classes: int) -> int:
    """ceil(log2(num_classes)), at least 1: the width a bit-packed class index needs."""
    return max(1, (num_classes - 1).bit_length())


class TempSchedule(_Record):
    """A teacher-temperature schedule over student epochs (Dynamic Knowledge Reuse)."""

    kind: ScheduleKind = "step"
    start: float = Field(20.0, gt=0.0, description="the authors' start T=20")
    floor: float = Field(2.0, gt=0.0, description="the authors' floor of 2")
    factor: float = Field(0.7, gt=0.0, le=1.0, description="step schedule: multiply by this")
    every: int = Field(30, ge=1, description="step schedule: every this many epochs")


class StudentTemp(_Record):
    """Calibrated Alignment: the student temperature grid re-fitted after each epoch."""

    calibrate: bool = True
    initial: float = Field(1.0, gt=0.0)
    grid_min: float = Field(0.01, gt=0.0)
    grid_max: float = Field(1.0, gt=0.0)
    grid_points: int = Field(100, ge=2)


class LogitStats(_Record):
    """Means over stored samples of the teacher's logits (before quantization)."""

    samples: int = Field(ge=0)
    top1_logit: float
    margin: float = Field(description="top-1 minus top-2 logit")
    entropy: float = Field(description="entropy of softmax(logits) at T=1, nats")
    topk_mass: dict[str, float] = Field(
        description="temperature -> softmax mass inside the file's top-k, from the full logits; empty when unknown"
    )
    kept_mass: dict[str, list[float]] = Field(
        default_factory=dict,
        description="1.1: k -> softmax mass inside the top k at each calibration temperature, from the full logits",
    )


class Calibration(_Record):
    temperatures: list[float]
    topk: int = Field(ge=1, description="the k that topk_mass figures are for")
    overall: LogitStats
    per_class: list[LogitStats] = Field(description="grouped by the class of each sample's own image")
    teacher_schedule: TempSchedule
    student: StudentTemp
