"""`lpq demo`'s settings."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, Field

from lpq.configs import Cli, Data, Seed
from lpq.format.header import ValueKind

BUDGET = Cli(panel="Budget (the defaults take about 65 s on a quiet 2-core CPU)")


class DemoConfig(BaseModel):
    output: Annotated[
        Path, Field(description="Folder for everything the demo writes."), Cli(flags=("-o", "--output"))
    ] = Path("lpq-demo")
    data: Data = "digits"
    model: Annotated[str, Field(description="Teacher and student architecture.")] = "convnet"
    teacher_epochs: Annotated[int, Field(ge=1, description="Teacher training epochs."), BUDGET] = 10
    ipc: Annotated[int, Field(ge=1, description="Synthetic images per class."), BUDGET] = 10
    iterations: Annotated[int, Field(ge=1, description="Synthesis steps per class."), BUDGET] = 200
    synth_lr: Annotated[float, Field(gt=0, description="Synthesis learning rate."), BUDGET] = 0.25
    label_epochs: Annotated[int, Field(ge=1, description="Relabel epochs."), BUDGET] = 100
    batch_size: Annotated[int, Field(ge=1, description="Relabel batch size."), BUDGET] = 25
    student_epochs: Annotated[int, Field(ge=1, description="Student training epochs."), BUDGET] = 100
    ratio: Annotated[float, Field(ge=1, description="Label pruning ratio of the compressed labels.")] = 10
    top_k: Annotated[int, Field(ge=1, description="Classes kept per sample in the compressed labels.")] = 3
    values: Annotated[ValueKind, Field(description="Value encoding of the compressed labels.")] = "i8"
    seed: Seed = 0
