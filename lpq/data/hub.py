"""A Hugging Face dataset as an image source: ``--data hf:NAME_OR_PATH[:SPLIT][#image=COL,label=COL]``.

NAME_OR_PATH is a dataset saved with ``save_to_disk`` (a folder), or a dataset name already in the local
Hugging Face cache (``imagenet-1k``; lpq never downloads: set ``HF_DATASETS_OFFLINE=1`` on machines without
a network). The split is SPLIT when given, else the one asked for: ``train``, and for the test split
``test``, else ``validation`` or ``val``. The image column is the first of the ``Image`` feature type and the
label column the first ``ClassLabel`` (whose names are the classes), unless ``#image=...,label=...`` names
them. Rows are read by index from the memory-mapped Arrow files and their encoded bytes decoded exactly as
image files are, so the same images give the same pixels from a folder, shards or a dataset.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch

from lpq.data.sources import EncodedImages
from lpq.errors import LpqError

TEST_SPLITS = ("test", "validation", "val")


def parse_hub(spec: str) -> tuple[str, str | None, dict[str, str]]:
    """'NAME_OR_PATH[:SPLIT][#image=COL,label=COL]' -> (name or path, split or None, column names)."""
    spec, _, cols = spec.partition("#")
    columns = dict(part.split("=", 1) for part in cols.split(",") if "=" in part)
    unknown = set(columns) - {"image", "label"}
    if unknown:
        raise LpqError("bad-data", f"hf:{spec}: unknown column option {sorted(unknown)[0]!r}", "use image= and label=")
    name, colon, split = spec.rpartition(":") if ":" in spec and not Path(spec).exists() else (spec, "", "")
    return (name, split, columns) if colon else (spec, None, columns)


class HubRecords:
    """Encoded image bytes by row index (the dataset reopens its memory-mapped files in each worker)."""

    def __init__(self, rows: Any, column: str, name: str) -> None:
        self.rows, self.column, self.name = rows, column, name

    def __len__(self) -> int:
        return len(self.rows)

    def read(self, index: int) -> bytes:
        cell = self.rows[index][self.column]
        if cell.get("bytes") is not None:
            return cell["bytes"]
        return Path(cell["path"]).read_bytes()

    def where(self, index: int) -> str:
        return f"{self.name}[{index}]"


def open_hub(spec: str, split: str = "train") -> EncodedImages:
    """The split of a local Hugging Face dataset as an image source (decoded when loaded)."""
    try:
        import datasets
    except ImportError:
        raise LpqError("extra-missing", "--data hf: needs the datasets library", "pip install 'lpq[hf]'") from None
    name, chosen, columns = parse_hub(spec)
    loaded = _load(datasets, name)
    if isinstance(loaded, datasets.DatasetDict):
        options = [chosen] if chosen else ["train"] if split == "train" else list(TEST_SPLITS)
        found = next((s for s in options if s in loaded), None)
        if found is None:
            raise LpqError("data-not-found", f"hf:{name} has no split {' or '.join(options)} (it has {list(loaded)})")
        rows, label_split = loaded[found], found
    else:
        rows, label_split = loaded, chosen or "(one split)"
    features = rows.features
    image = columns.get("image") or next((c for c, f in features.items() if isinstance(f, datasets.Image)), None)
    label = columns.get("label") or next((c for c, f in features.items() if isinstance(f, datasets.ClassLabel)), None)
    label = label or next((c for c in ("label", "labels") if c in features), None)
    if image not in features or label not in features:
        raise LpqError(
            "data-bad-columns",
            f"hf:{name} has no {'image' if image not in features else 'label'} column ({list(features)})",
            "name them: hf:NAME#image=COLUMN,label=COLUMN",
        )
    labels = torch.tensor(rows[label], dtype=torch.int64)
    where = f"hf:{name}:{label_split}"
    if isinstance(features[label], datasets.ClassLabel):
        classes = list(features[label].names)
    else:
        width = len(str(int(labels.max())))
        classes = [str(i).zfill(width) for i in range(int(labels.max()) + 1)]
    bad = ((labels < 0) | (labels >= len(classes))).nonzero().flatten()
    if len(bad):  # ClassLabel's -1 is the library's "no label"; a value past the names is no class either
        row, value = int(bad[0]), int(labels[bad[0]])
        raise LpqError(
            "data-no-label" if value < 0 else "data-bad-label",
            f"{where}: row {row} has label {value}, "
            + ("which means no label" if value < 0 else f"outside its {len(classes)} classes")
            + f" ({len(bad)} such rows)",
            "keep the labelled rows (dataset.filter(lambda r: r['label'] >= 0)) and save it again",
        )
    rows = rows.select_columns([image]).cast_column(image, datasets.Image(decode=False))
    digest = hashlib.sha256(f"{label_split}\0{len(rows)}\0".encode())
    for f in rows.cache_files:
        p = Path(f["filename"])
        digest.update(f"{p.name}\0{p.stat().st_size}\0".encode())
    digest.update(labels.numpy().astype("<i8").tobytes())
    return EncodedImages(where, HubRecords(rows, image, where), labels, classes, digest.hexdigest())


def _load(datasets: Any, name: str) -> Any:
    if Path(name).expanduser().exists():
        folder = Path(name).expanduser()
        try:
            return datasets.load_from_disk(str(folder))
        except (OSError, ValueError) as e:  # pyarrow's errors say what is wrong, never in which file
            damaged = _damaged_arrow(folder)
            if damaged is not None:
                raise LpqError("data-bad-file", damaged, "save the dataset again") from None
            raise LpqError("data-not-found", f"hf:{name} is not a dataset saved with save_to_disk ({e})") from None
    try:
        return datasets.load_dataset(name, download_mode="reuse_cache_if_exists")
    except Exception as e:  # the library raises many kinds (offline, not found, no cache): one line, its first
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise LpqError(
            "data-not-found", f"hf:{name} is neither a saved dataset nor in the local cache ({first})"
        ) from None


def _damaged_arrow(folder: Path) -> str | None:
    """The first Arrow file under a saved dataset that cannot be read whole, and why; None if all can."""
    import pyarrow as pa

    for f in sorted(folder.rglob("*.arrow")):
        try:
            with pa.memory_map(str(f)) as m:
                pa.ipc.open_stream(m).read_all()
        except (pa.ArrowException, OSError) as e:
            return f"{f} is truncated or damaged ({str(e).strip().splitlines()[0]})"
    return None
