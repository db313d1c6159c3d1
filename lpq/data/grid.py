"""A contact sheet of an image folder: one row per class (up to a cap), its first images, the class name beside
them. What every dataset-distillation paper shows of its distilled images; `lpq synth` writes one as grid.png.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lpq.data.layout import list_split
from lpq.data.sources import decode
from lpq.files import atomic

MAX_CLASSES = 20
MAX_PER_CLASS = 10
TILE = 64  # pixels a side: small images are scaled up (nearest) so their pixels stay visible
LABEL = 120  # pixels of the name column


def contact_sheet(folder: Path, out: Path, max_classes: int = MAX_CLASSES, per_class: int = MAX_PER_CLASS) -> Path:
    """Write ``out`` (PNG) from ``folder``'s class folders: the first ``max_classes`` classes (evenly spaced
    over all of them), up to ``per_class`` images each."""
    from PIL import Image, ImageDraw

    files = list_split(folder, "train")
    step = max(1, -(-len(files.classes) // max_classes))
    shown = list(range(0, len(files.classes), step))[:max_classes]
    sheet = Image.new("RGB", (LABEL + per_class * TILE, len(shown) * TILE), "white")
    draw = ImageDraw.Draw(sheet)
    labels = files.labels
    for row, c in enumerate(shown):
        members = np.flatnonzero(labels == c)[:per_class]
        for col, i in enumerate(members.tolist()):
            pixels = decode(files.files[i]).permute(1, 2, 0).numpy()
            tile = Image.fromarray(pixels)
            scale = Image.NEAREST if max(tile.size) < TILE else Image.BILINEAR
            sheet.paste(tile.resize((TILE, TILE), scale), (LABEL + col * TILE, row * TILE))
        draw.text((4, row * TILE + TILE // 2 - 6), files.classes[c][:18], fill="black")
    with atomic(out) as tmp:
        sheet.save(tmp, format="PNG")
    return out
