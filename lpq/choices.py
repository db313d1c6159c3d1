"""The closed choices of a run, each defined once: the pydantic configs take these types and the CLI builds its
option enums from them (lpq.cli.options). The label container's own choices (scheme, values, mixing, schedule,
pruning strategy, interpolation) live with the header they describe, in lpq.format.header."""

from typing import Literal

Amp = Literal["auto", "none", "bf16", "fp16"]  # autocast: auto is bf16 on CUDA (fp16 for inference), none on CPU
CaFit = Literal["first-batches", "last-batch"]  # what Calibrated Alignment fits T_s on (lpq.stages.train)
Optimizer = Literal["adamw", "sgd"]
Targets = Literal["soft", "hard"]  # soft: the stored labels; hard: the images' own classes (a baseline)
Batching = Literal["classwise", "mixed"]  # synthesis batches: one class (LPQLD) or several (SRe2L)
Init = Literal["noise", "real"]  # synthesis starts from Gaussian noise or from random real images
Layout = Literal["sre2l"]  # label layouts of other tools that lpq import/export read and write
TeacherClasses = Literal["imagenet1k"]  # label spaces a pretrained head can be cut down from (lpq.models.classes)

# The authors' two regimes split at this input side (pixels): at or below it, Tiny-ImageNet's settings (synthesis
# lr 0.1, BN weight 0.05) and the 3x3 stride-1 stem of ResNet-style and MobileNet models; above it, ImageNet-1K's.
SMALL_INPUT = 64
