"""`lpq compare`'s settings."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, Field

from lpq.configs import Cli


class CompareConfig(BaseModel):
    runs: Annotated[
        list[Path],
        Field(min_length=1, description="lpq train output folders (one student, or --seeds runs)."),
        Cli(argument=True),
    ]
    plot: Annotated[Path | None, Field(description="Also draw top-1 against label bytes into this PNG.")] = None
    real_top1: Annotated[
        float | None,
        Field(
            ge=0,
            le=100,
            description="Top-1 (%) of the student architecture trained on the full real data with hard labels, for "
            "HLR (default: the images' teacher, where lpq squeeze trained it with the students' architecture).",
        ),
    ] = None
