"""`lpq inspect`'s settings."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, Field

from lpq.configs import Cli


class InspectConfig(BaseModel):
    """What `lpq inspect` shows of ``file``: its summary, or one stored batch."""

    file: Annotated[Path, Field(description="A .lpql label file."), Cli(argument=True, exists="file")]
    batch: Annotated[int | None, Field(ge=0, description="Show this stored batch (global batch id).")] = None
    verify: Annotated[
        bool, Field(description="Check every checksum and decode every batch."), Cli(flags=("--verify",))
    ] = False
