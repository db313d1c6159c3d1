"""`lpq quantize`'s settings."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, Field, model_validator

from lpq.configs import Budget, Cli, MsTemp, Rank, SampleTemp, TailPoints, TopK
from lpq.format.header import BASIS_RANK, MS_TEMPERATURE, SAMPLE_TEMPERATURE, TAIL_POINTS, Scheme, ValueKind


class QuantizeConfig(BaseModel):
    """What `quantize_file` (lpq quantize) does: re-store ``labels`` as top-k codes and/or fewer-bit values."""

    labels: Annotated[Path, Field(description="Input .lpql file (left untouched)."), Cli(argument=True, exists="file")]
    output: Annotated[Path, Field(description="Quantized file to write."), Cli(flags=("-o", "--output"))]
    top_k: TopK = None
    keep_mass: Annotated[float, Field(gt=0, le=1, description="With --top-k auto: the mean softmax mass to keep.")] = (
        0.9
    )
    at_temp: Annotated[
        float | None,
        Field(
            gt=0,
            description="With --top-k auto: the temperature the mass is measured at (default: the middle epoch's of "
            "the labels' DKR schedule, 3.361 for the authors', where half of a run is at it or hotter).",
        ),
    ] = None
    scheme: Annotated[
        Scheme | None,
        Field(
            description="mr (top-k logits, re-normalized in training), ms (top-k probabilities), tail (top-k logits "
            "and the rest's curve: the mass outside them right at every temperature), sampled (k classes drawn from "
            "the teacher's softmax, importance-weighted at every temperature), basis (top-k logits and coefficients on "
            "a basis of the file's logits: the rest's logits shaped like the teacher's) or none; default mr. With "
            "--budget, the one code the budget may choose (default: the closest to the full targets)."
        ),
    ] = None
    tail_points: TailPoints = TAIL_POINTS
    sample_temp: SampleTemp = SAMPLE_TEMPERATURE
    rank: Rank = BASIS_RANK
    values: Annotated[ValueKind, Field(description="Value encoding.")] = "i8"
    ms_temp: MsTemp = MS_TEMPERATURE
    budget: Budget = None

    @model_validator(mode="after")
    def _full_labels_take_no_k(self) -> QuantizeConfig:
        if self.scheme == "none" and self.top_k is not None:
            raise ValueError(f"scheme none keeps every class: drop --top-k {self.top_k}, or choose --scheme mr or ms")
        if self.budget is not None and self.top_k is not None:
            raise ValueError("--budget chooses the code and k: drop --top-k, or drop --budget")
        if self.budget is not None and self.scheme == "none":
            raise ValueError("--budget chooses a code: --scheme none keeps every class; drop it, or drop --budget")
        return self
