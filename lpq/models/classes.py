"""The classes a pretrained classifier predicts, by name, and the rows of its head that a dataset's classes use.

A 1,000-class ImageNet teacher can label any dataset whose classes are ImageNet wnids (Tiny-ImageNet,
ImageNette, ImageWoof, ImageNet-100 folders, as distillation papers use them): keep the classifier rows of
the data's classes, in the data's order, and the teacher becomes a C-class teacher whose softmax runs over
those C classes only. `lpq squeeze --teacher-classes imagenet1k` does that once and records the mapping
(`ClassMap`) in the teacher file, so synthesis, relabel and evaluation all use the same rows.

``imagenet1k``: the 1,000 wnids of ImageNet-1K in class-index order, which is their sorted order (what an
ImageNet folder gives and every torchvision and timm ImageNet weight expects). The list is package data,
copied from timm's ``timm/data/_info/imagenet_synsets.txt`` (tests compare the two when timm is installed):
a 10 KB text file needs no dependency, and timm is where the field already takes it from.

    from lpq.models.classes import head_rows
    rows = head_rows("imagenet1k", ["n01443537", "n01629819"])   # [1, 25]
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files

from pydantic import BaseModel, ConfigDict, Field, model_validator

from lpq.choices import TeacherClasses
from lpq.errors import LpqError


@cache
def source_classes(source: TeacherClasses) -> tuple[str, ...]:
    """The class names of a label space, in the order of a classifier's rows."""
    return tuple(files("lpq.models").joinpath(f"{source}_wnids.txt").read_text().split())


class ClassMap(BaseModel):
    """Which rows of a pretrained head a restricted teacher kept: row ``rows[i]`` of ``source`` is class i."""

    model_config = ConfigDict(frozen=True)

    source: TeacherClasses
    source_classes: int = Field(ge=1, description="rows of the head the weights came with")
    rows: list[int] = Field(description="the kept rows, in the data's class order")

    @model_validator(mode="after")
    def _rows_in_range(self) -> ClassMap:
        if any(not 0 <= r < self.source_classes for r in self.rows) or len(set(self.rows)) != len(self.rows):
            raise ValueError(f"rows must be distinct and in [0, {self.source_classes})")
        return self


def head_rows(source: TeacherClasses, classes: list[str]) -> ClassMap:
    """The rows of ``source``'s head for ``classes``, in their order; a class it does not know is an error."""
    names = source_classes(source)
    where = {name: i for i, name in enumerate(names)}
    unknown = [c for c in classes if c not in where]
    if unknown:
        more = f" and {len(unknown) - 1} more" if len(unknown) > 1 else ""
        raise LpqError(
            "teacher-class-unknown",
            f"class {unknown[0]!r}{more} of the data is not one of the {len(names)} {source} classes",
            f"--teacher-classes {source} needs class folders named by {source} wnids (n01440764, ...)",
        )
    return ClassMap(source=source, source_classes=len(names), rows=[where[c] for c in classes])
