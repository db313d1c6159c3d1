"""The synth manifest: synth.json beside a synthesized image folder, what `lpq synth` made it with and how far it got.

`lpq synth` writes it (and resumes from it); `lpq relabel` reads it to refuse an unfinished image folder.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from lpq.errors import LpqError

MANIFEST = "synth.json"


class GroupResult(BaseModel):
    """One optimized group of images: a class (class-wise) or a mixed batch."""

    model_config = ConfigDict(ser_json_inf_nan="strings")  # a diverged loss is recorded as "NaN" and read back

    group: int
    classes: list[int]
    ce_loss: float
    bn_loss: float
    teacher_correct: int
    seconds: float


class SynthManifest(BaseModel):
    tool: str
    teacher: str
    teacher_sha256: str
    settings: dict[str, object]
    class_names: list[str]
    complete: bool = False
    groups: list[GroupResult] = []
    teacher_top1: float | None = Field(None, description="teacher accuracy on the saved images, %")
    within_class_cosine: float | None = Field(
        None, description="mean within-class cosine similarity of teacher features"
    )


def read_manifest(folder: Path) -> SynthManifest | None:
    """The synth.json of an image folder, if it has one (relabel checks it)."""
    return load_manifest(folder) if (folder / MANIFEST).exists() else None


def load_manifest(folder: Path) -> SynthManifest:
    path = folder / MANIFEST
    try:
        return SynthManifest.model_validate_json(path.read_text())
    except ValueError:  # pydantic's ValidationError is a ValueError
        raise LpqError("synth-bad-manifest", f"{path} is not a valid synth manifest") from None
