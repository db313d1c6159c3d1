"""`lpq relabel`'s settings."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, Field, field_validator, model_validator

from lpq.configs import (
    Amp,
    Budget,
    Cli,
    Device,
    MsTemp,
    Rank,
    Resume,
    SampleTemp,
    Seed,
    TailPoints,
    Teacher,
    TeacherClasses,
    TopK,
    Workers,
)
from lpq.format.header import (
    BASIS_RANK,
    DEFAULT_KEEP,
    MS_TEMPERATURE,
    SAMPLE_TEMPERATURE,
    TAIL_POINTS,
    Augment,
    Interpolation,
    KeepStrategy,
    MixKind,
    Scheme,
    ValueKind,
)

AUG = Cli(panel="Augmentation")
AUTHORS = {name: f.default for name, f in Augment.model_fields.items()}  # the header's defaults: the authors' relabel
COMPACT = Cli(panel="Pruning and quantization")


class RelabelConfig(BaseModel):
    images: Annotated[
        str,
        Field(description="Image set: a folder of class folders (lpq synth output) or a --data name."),
        Cli(argument=True),
    ]
    teacher: Teacher = None
    teacher_classes: TeacherClasses = None
    output: Annotated[Path, Field(description="Label file to write."), Cli(flags=("-o", "--output"))] = Path(
        "labels.lpql"
    )
    epochs: Annotated[
        int, Field(ge=1, description="Epochs of augmented batches (authors: 300 on ImageNet-1K, 100 on Tiny).")
    ] = 300
    batch_size: Annotated[int, Field(ge=1, le=65535, description="Batch size (authors: 128 ImageNet-1K, 64 Tiny).")] = (
        64
    )
    ratio: Annotated[float, Field(ge=1.0, description="Label only 1/ratio of the batches."), COMPACT] = 1.0
    strategy: Annotated[
        KeepStrategy,
        Field(
            description="Which batches --ratio keeps: cover (whole epochs first, every image labelled), first, random."
        ),
        COMPACT,
    ] = DEFAULT_KEEP
    prune_seed: Annotated[int, Field(ge=0, description="Seed of the batches --ratio keeps."), COMPACT] = 0
    top_k: Annotated[TopK, COMPACT] = None
    scheme: Annotated[
        Scheme,
        Field(
            description="none, mr (top-k logits), ms (top-k probabilities), tail (top-k logits and the rest's curve), "
            "sampled (k classes drawn from the teacher's softmax, with their logits) or basis (top-k logits and "
            "coefficients on a basis of the file's logits). With --budget, the one code the budget may choose."
        ),
        COMPACT,
    ] = "none"
    values: Annotated[ValueKind, Field(description="Value encoding."), COMPACT] = "f16"
    ms_temp: Annotated[MsTemp, COMPACT] = MS_TEMPERATURE
    tail_points: Annotated[TailPoints, COMPACT] = TAIL_POINTS
    sample_temp: Annotated[SampleTemp, COMPACT] = SAMPLE_TEMPERATURE
    rank: Annotated[Rank, COMPACT] = BASIS_RANK
    budget: Annotated[Budget, COMPACT] = None
    input_size: Annotated[
        int | None, Field(ge=1, description="The teacher's input side in px (default: the teacher's input size)."), AUG
    ] = None
    crop_scale: Annotated[tuple[float, float], Field(description="RandomResizedCrop area range."), AUG] = AUTHORS[
        "crop_scale"
    ]
    crop_ratio: Annotated[tuple[float, float], Field(description="RandomResizedCrop aspect range."), AUG] = AUTHORS[
        "crop_ratio"
    ]
    flip_p: Annotated[float, Field(ge=0, le=1, description="Horizontal flip probability."), AUG] = AUTHORS["flip_p"]
    interpolation: Annotated[Interpolation, Field(description="Resampling of the crops."), AUG] = AUTHORS[
        "interpolation"
    ]
    mix: Annotated[MixKind, Field(description="Batch mixing."), AUG] = AUTHORS["mix"]
    mix_alpha: Annotated[float, Field(gt=0, description="Beta(alpha, alpha) mixing weight."), AUG] = AUTHORS[
        "mix_alpha"
    ]
    seed: Seed = 0
    workers: Workers = None
    resume: Resume = False
    device: Device = "auto"
    amp: Amp = "auto"

    @field_validator("top_k")
    @classmethod
    def _auto_needs_full_labels(cls, k: int | str | None) -> int | str | None:
        if k == "auto":  # one --top-k type in relabel and quantize; only quantize can choose k
            raise ValueError(
                "auto picks k from the full labels' softmax mass, known only after labelling: relabel without "
                "--top-k, then lpq quantize --top-k auto"
            )
        return k

    @model_validator(mode="after")
    def _budget_chooses_k(self) -> RelabelConfig:
        if self.budget is not None and self.top_k is not None:
            raise ValueError("--budget chooses the code and k: drop --top-k, or drop --budget")
        return self

    @model_validator(mode="before")
    @classmethod
    def _top_k_means_mr(cls, data: object) -> object:
        """Asking for a top-k is asking for top-k labels: MR unless MS is named."""
        if isinstance(data, dict) and data.get("top_k") is not None and data.get("scheme", "none") == "none":
            return {**data, "scheme": "mr"}
        return data
