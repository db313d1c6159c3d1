"""`lpq export`'s and `lpq import`'s settings."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from lpq.choices import Layout
from lpq.configs import Cli
from lpq.format.header import ValueKind


class ExportConfig(BaseModel):
    labels: Annotated[Path, Field(description="The .lpql file to export."), Cli(argument=True, exists="file")]
    to: Annotated[Layout, Field(description="The layout to write: sre2l (SRe2L, LPLD and LPQLD's code).")] = "sre2l"
    output: Annotated[Path, Field(description="Folder to write (must not exist)."), Cli(flags=("-o", "--output"))]
    images: Annotated[str | None, Field(description="The image set, needed when its images differ in size.")] = None


class ImportConfig(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    folder: Annotated[
        Path, Field(description="A folder in another tool's layout."), Cli(argument=True, exists="folder")
    ]
    layout: Annotated[
        Layout,
        Field(alias="from", description="Its layout: sre2l (SRe2L, LPLD and LPQLD's code)."),
        Cli(flags=("--from",)),
    ] = "sre2l"
    images: Annotated[str, Field(description="The image set the labels belong to (ImageFolder order).")]
    output: Annotated[Path, Field(description="Label file to write."), Cli(flags=("-o", "--output"))]
    values: Annotated[
        ValueKind | None, Field(description="Value encoding (default: their logits' own precision, f16 or f32).")
    ] = None
    input_size: Annotated[
        int | None,
        Field(
            ge=1,
            description="Their crop size, which their CutMix boxes refer to (recorded by lpq export; else required).",
        ),
    ] = None
    mean: Annotated[
        tuple[float, float, float] | None, Field(description="The teacher's normalization mean (default ImageNet's).")
    ] = None
    std: Annotated[tuple[float, float, float] | None, Field(description="The teacher's normalization std.")] = None
    epochs: Annotated[
        int | None, Field(ge=1, description="Relabel epochs their run planned (sets the pruning ratio).")
    ] = None
