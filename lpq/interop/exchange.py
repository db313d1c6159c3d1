"""Labels in and out of `.lpql`: other tools' layouts, by name (a registry: a new layout is a new entry).

``sre2l`` is the layout SRe2L, LPLD and LPQLD's public code writes and reads (`lpq.interop.sre2l`). Export
writes a folder their training script loads; import reads such a folder (``torch.load`` with
``weights_only=True`` only) into a `.lpql` file whose batches store their augmentation (format 1.1), since
crops made elsewhere cannot be derived from a seed. Export then import gives the same labels and crops.

    lpq export labels.lpql --to sre2l -o fkd_labels/
    lpq import fkd_labels/ --images syn/ -o labels.lpql
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from pydantic import BaseModel, Field

from lpq import __version__
from lpq.configs.exchange import ExportConfig, ImportConfig
from lpq.data import IMAGENET_MEAN, IMAGENET_STD, ImageSource, open_images
from lpq.errors import LpqError
from lpq.files import atomic, check_new, writing
from lpq.format import (
    Augment,
    Header,
    ImageSet,
    LpqlReader,
    LpqlWriter,
    Prune,
    Quant,
    Relabel,
    Teacher,
)
from lpq.interop import sre2l
from lpq.method.replay import check_images
from lpq.method.temperature import CalibrationStats
from lpq.progress import Show, progress

AUTHORS_SIZES = (224, 64)  # the crop sizes their training code assumes (ImageNet, Tiny-ImageNet)
EXPORT_NOTE = "lpq_export.json"  # beside their files: what import needs and their layout does not record
UNKNOWN_TEACHER = "0" * 64


class ExportResult(BaseModel):
    output: Path
    layout: str
    batches: int
    input_size: int = Field(description="the crop size, px, that crops and CutMix boxes refer to")
    file_bytes_before: int
    folder_bytes: int
    why_size: str = Field(description="why the folder's bytes differ from the file's")
    notes: list[str] = Field([], description="what a user of the exported folder must know")


class ImportResult(BaseModel):
    output: Path
    layout: str
    batches: int
    samples: int
    scheme: str
    k: int
    values: str
    epochs: int
    ratio: float
    inferred: list[str] = Field([], description="settings the folder does not record, inferred from it")
    folder_bytes: int
    file_bytes: int
    smaller_by: float
    why_size: str = Field(description="why the file's bytes differ from the folder's")
    notes: list[str] = Field([], description="what was inferred, rounded or skipped")


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.iterdir() if p.is_file())


def export_sre2l(cfg: ExportConfig, show: bool | Show = False) -> ExportResult:
    check_new(cfg.output)
    with LpqlReader(cfg.labels) as r:
        h = r.header
        sre2l.check_exportable(r)
        if h.images.height and h.images.width:
            image_hw = np.tile(np.array([h.images.height, h.images.width]), (h.images.count, 1))
        else:
            if cfg.images is None:
                raise LpqError(
                    "export-needs-images",
                    "the labels' images differ in size: crops are stored as fractions of each image",
                    "pass --images",
                )
            source = open_images(cfg.images)
            check_images(source, h, cfg.labels, cfg.images)
            image_hw = source.sizes()
        batch_map: dict[str, list[int]] = {}
        with atomic(cfg.output) as tmp, progress(show) as bar:
            tmp.mkdir(parents=True)
            task = bar.add_task("export", total=len(r.batch_ids), info="")
            for n, bid in enumerate(r.batch_ids.tolist()):
                batch, images = sre2l.export_batch(r, r.read(bid), image_hw)
                with writing(sre2l.batch_path(tmp, n)) as f:
                    torch.save(batch, f)
                batch_map[str(n)] = images
                bar.update(task, advance=1)
            # Checked on the written map (each batch read once): the half-written folder is removed on refusal.
            starts = sre2l.ambiguous_starts(list(batch_map.values()))
            if starts is not None:
                n, m, key = starts
                raise LpqError(
                    "export-ambiguous",
                    f"exported batches {n} and {m} both start with images {key}: the authors' reader finds a batch "
                    "by its first three image indices and would fail (ValueError)",
                    "export fewer epochs, or a larger image set",
                )
            (tmp / sre2l.MAP).write_text(json.dumps(batch_map))
            a = h.augment
            note = {
                "tool": f"lpq {__version__}",
                "input_size": a.input_size,
                "mean": a.mean,
                "std": a.std,
                "epochs": h.relabel.epochs,
                "classes": h.class_names,
                "teacher": h.teacher.architecture,
            }
            (tmp / EXPORT_NOTE).write_text(json.dumps(note, indent=1))
        size = r.size
    notes = [
        f"crops and CutMix boxes refer to {h.augment.input_size} px inputs; the authors' training code crops at its "
        "own fixed size (224 for ImageNet, 64 for Tiny-ImageNet): set it to this size"
    ]
    return ExportResult(
        output=cfg.output,
        layout=cfg.to,
        batches=len(batch_map),
        input_size=h.augment.input_size,
        file_bytes_before=size,
        folder_bytes=folder_bytes(cfg.output),
        why_size=f"their layout keeps each of the {len(batch_map)} batches as a torch.save zip of float16 logits and "
        "float16 crop fractions per sample, uncompressed; .lpql packs the values and zstd-compresses them"
        + (", and derives crops from a seed" if not h.augment.stored else ""),
        notes=notes if h.augment.input_size not in AUTHORS_SIZES else [],
    )


def _note(folder: Path) -> dict:
    path = folder / EXPORT_NOTE
    try:
        return json.loads(path.read_text()) if path.exists() else {}
    except ValueError:
        raise LpqError("import-bad-folder", f"{path} is not JSON") from None


def _import_notes(
    folder: Path, inferred: bool, epochs: int, bpe: int, batch_size: int, n_images: int, n_batches: int
) -> list[str]:
    """What an import could not take as written: inferred epochs, their runs' dropped last batches, files outside
    their batch map."""
    notes = []
    if inferred:
        notes.append(
            f"{epochs} relabel epochs and pruning ratio x{epochs * bpe / n_batches:g} are inferred from the "
            "batch count (pass --epochs with the epochs their run planned)"
        )
    if n_batches < epochs * bpe and n_images % batch_size:
        notes.append(
            f"their pruned runs drop each epoch's last incomplete batch (drop_last: {n_images // batch_size} "
            f"batches per epoch, not {bpe}), so epoch numbers here are approximate"
        )
    skipped = sre2l.unlisted(folder, n_batches)
    if skipped:
        notes.append(
            f"{len(skipped)} batch files are not in their batch map and were skipped ({', '.join(skipped[:3])}"
            + (", ...)" if len(skipped) > 3 else ")")
        )
    return notes


def _write_imported(
    cfg: ImportConfig, header: Header, images: ImageSource, mix: str, batches: int, show: bool | Show
) -> int:
    """Their batches as the records of one label file (with a calibration where the logits are full); the samples
    written. A batch that mixes or labels unlike batch 0 stops the import, and no file is left."""
    scheme, hw = header.quant.scheme, images.sizes()
    stats = CalibrationStats.for_header(header) if scheme == "none" else None  # masses need the full logits
    writer = LpqlWriter(cfg.output, header)
    samples = 0
    try:
        with progress(show) as bar:
            task = bar.add_task("import", total=batches, info="")
            for n, batch in sre2l.their_batches(cfg.folder, len(images), header.num_classes):
                if batch.mix != mix or (batch.indices is None) != (scheme == "none"):
                    raise LpqError("import-bad-batch", f"batch {n} mixes or labels differently from batch 0")
                rec = sre2l.to_record(batch, n, header.relabel.batches_per_epoch, hw, header.augment.input_size, scheme)
                writer.add(rec)
                if stats is not None:
                    stats.add(rec.values, images.labels[torch.from_numpy(batch.image_indices)].numpy())
                samples += rec.size
                bar.update(task, advance=1)
        writer.finish(stats.calibration() if stats is not None else None)
    except BaseException:
        writer.discard()
        raise
    return samples


def import_sre2l(cfg: ImportConfig, show: bool | Show = False) -> ImportResult:
    check_new(cfg.output)
    images = open_images(cfg.images)
    n_images, classes, hw = len(images), images.classes, images.sizes()
    note = _note(cfg.folder)
    if note.get("classes", classes) != classes:
        raise LpqError("class-mismatch", f"{cfg.folder} was exported for other classes than {cfg.images}")
    batch_map = sre2l.read_map(cfg.folder)
    first = sre2l.parse_batch(sre2l.batch_path(cfg.folder, 0), batch_map[0], n_images, len(classes))
    scheme, k = ("none", len(classes)) if first.indices is None else ("mr", first.values.shape[1])
    batch_size = max(len(v) for v in batch_map.values())
    bpe = math.ceil(n_images / batch_size)
    planned = cfg.epochs or note.get("epochs")
    epochs = max(planned or 1, sre2l.epochs_for(len(batch_map), bpe))
    values = cfg.values or ("f32" if first.precision == "float32" else "f16")
    inferred = [] if planned else ["epochs"]
    notes = _import_notes(cfg.folder, planned is None, epochs, bpe, batch_size, n_images, len(batch_map))
    if values != first.precision.replace("float", "f"):
        notes.append(f"their {first.precision} logits are stored as {values} (--values): rounded, not kept exactly")
    uniform = (hw == hw[0]).all()
    size = cfg.input_size or note.get("input_size")
    if size is None:  # their CutMix boxes are in crop pixels, which the images' own size does not tell
        raise LpqError(
            "import-needs-size",
            f"{cfg.folder} does not record the crop size its CutMix boxes refer to",
            "pass --input-size (the authors' code: 224 for ImageNet, 64 for Tiny-ImageNet)",
        )
    header = Header(
        tool=f"lpq {__version__} (imported from {cfg.layout})",
        num_classes=len(classes),
        class_names=classes,
        images=ImageSet(
            fingerprint=images.fingerprint(),
            count=n_images,
            height=int(hw[0, 0]) if uniform else 0,
            width=int(hw[0, 1]) if uniform else 0,
        ),
        teacher=Teacher(architecture=str(note.get("teacher", "unknown")), weights_sha256=UNKNOWN_TEACHER),
        augment=Augment(
            input_size=size,
            mix=first.mix,
            mean=cfg.mean or note.get("mean") or IMAGENET_MEAN,
            std=cfg.std or note.get("std") or IMAGENET_STD,
            eval_resize="center-crop" if size > 64 else "none",
            stored=True,
        ),
        relabel=Relabel(epochs=epochs, batch_size=batch_size, batches_per_epoch=bpe, seed=0),
        prune=Prune(
            ratio=epochs * bpe / len(batch_map),
            strategy="first" if len(batch_map) < epochs * bpe else "none",
            kept=list(range(len(batch_map))),
        ),
        quant=Quant.of(scheme, k, values, len(classes)),
    )
    samples = _write_imported(cfg, header, images, first.mix, len(batch_map), show)
    before, after = folder_bytes(cfg.folder), cfg.output.stat().st_size
    return ImportResult(
        output=cfg.output,
        layout=cfg.layout,
        batches=len(batch_map),
        samples=samples,
        scheme=scheme,
        k=k,
        values=values,
        epochs=epochs,
        ratio=epochs * bpe / len(batch_map),
        inferred=inferred,
        folder_bytes=before,
        file_bytes=after,
        smaller_by=before / after,
        why_size=f"{len(batch_map)} torch.save zips of {first.precision} logits and float16 crop fractions, "
        f"uncompressed, became one file of {values} values, zstd-compressed, with integer crop boxes",
        notes=notes,
    )


EXPORTERS: dict[str, Callable[[ExportConfig, bool], ExportResult]] = {"sre2l": export_sre2l}
IMPORTERS: dict[str, Callable[[ImportConfig, bool], ImportResult]] = {"sre2l": import_sre2l}


def export_labels(cfg: ExportConfig, show: bool | Show = False) -> ExportResult:
    return EXPORTERS[cfg.to](cfg, show)


def import_labels(cfg: ImportConfig, show: bool | Show = False) -> ImportResult:
    return IMPORTERS[cfg.layout](cfg, show)
