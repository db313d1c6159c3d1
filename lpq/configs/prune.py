"""`lpq prune`'s settings."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, Field

from lpq.configs import Cli, Seed
from lpq.format.header import DEFAULT_KEEP, KeepStrategy


class PruneConfig(BaseModel):
    """What `prune_file` (lpq prune) does: keep 1/ratio of ``labels``' batches under a strategy, into ``output``."""

    labels: Annotated[Path, Field(description="Input .lpql file (left untouched)."), Cli(argument=True, exists="file")]
    ratio: Annotated[
        float, Field(ge=1.0, description="Keep round(total / ratio) batches; composes with earlier pruning.")
    ]
    output: Annotated[Path, Field(description="Pruned file to write."), Cli(flags=("-o", "--output"))]
    strategy: Annotated[
        KeepStrategy, Field(description="cover: whole epochs first, every image labelled; first; random.")
    ] = DEFAULT_KEEP
    seed: Seed = 0
