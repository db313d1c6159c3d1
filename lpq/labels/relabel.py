"""`lpq relabel`: the teacher's soft labels for every kept augmented batch, streamed into a `.lpql` file.

Per epoch a seeded shuffle into batches; per image a RandomResizedCrop and a flip; per batch a CutMix (or
MixUp, or none); the teacher's logits on exactly that batch (METHOD.md section 2, stage 3). With
``ratio`` only 1/ratio of the batches is planned and labelled (label pruning that also saves teacher
compute); with ``top_k`` labels are quantized on the way in. Chunks are appended as batches finish, so an
interrupted run resumes where it stopped. Under ``torchrun --nproc-per-node N`` rank r labels kept
batches r, r+N, ... into its own part, and rank 0 merges the parts into one file whose decoded labels
equal a single-process run's.

    lpq relabel syn/ --teacher teacher.lpqt --epochs 300 --batch-size 64 --ratio 10 -o labels.lpql
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from pydantic import BaseModel, Field

from lpq import __version__
from lpq.data import ImageSet, load_split
from lpq.errors import LpqError
from lpq.format import (
    Augment,
    BatchRecord,
    Header,
    ImageSet as ImageSetHeader,
    IndexCodec,
    LpqlWriter,
    Prune,
    Quant,
    Relabel,
    Teacher as TeacherHeader,
    TempSchedule,
    ValueCodec,
    index_bits,
    partial_path,
)
from lpq.format.rng import epoch_order
from lpq.format.writer import read_partial_batches
from lpq.labels.quantize import quantize_logits
from lpq.labels.replay import plan_batch, render
from lpq.labels.temperature import CalibrationStats, schedule_temperatures
from lpq.progress import progress
from lpq.runtime import barrier, init_distributed, pick_device
from lpq.squeeze.teacher import Teacher, load_teacher
from lpq.synth.synth import read_manifest

CALIB_SAVE_SECONDS = 10.0  # how often the resumable calibration sums are saved beside the partial file


class RelabelConfig(BaseModel):
    images: str = Field(description="image set: a folder (lpq synth output) or a --data name")
    teacher: Path
    output: Path = Path("labels.lpql")
    epochs: int = Field(300, ge=1, description="METHOD.md: 300 on ImageNet-1K, 100 on Tiny-ImageNet")
    batch_size: int = Field(64, ge=1, le=65535)
    seed: int = Field(0, ge=0)
    ratio: float = Field(1.0, ge=1.0, description="label 1/ratio of the batches")
    strategy: Literal["first", "random"] = Field("random", description="which batches a ratio keeps")
    prune_seed: int = 0
    scheme: Literal["none", "mr", "ms"] = "none"
    top_k: int | None = Field(None, ge=1)
    values: Literal["f32", "f16", "i8", "i4"] = "f16"
    ms_temperature: float = Field(1.0, gt=0)
    input_size: int | None = Field(None, ge=1, description="default: the teacher's input size")
    crop_scale: tuple[float, float] = (0.08, 1.0)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip_p: float = 0.5
    interpolation: Literal["bilinear", "bicubic", "nearest"] = "bilinear"
    mix: Literal["cutmix", "mixup", "none"] = "cutmix"
    mix_alpha: float = Field(1.0, gt=0)
    resume: bool = False
    device: str = "auto"


class RelabelResult(BaseModel):
    output: Path
    batches_kept: int
    batches_total: int
    samples: int
    file_bytes: int
    bytes_per_sample: float
    seconds: float
    batches_per_second: float


def select_batches(total: int, ratio: float, strategy: str, seed: int) -> list[int]:
    """round(total / ratio) batch ids, at least 1: the first ones, or a seeded random sorted subset."""
    if ratio < 1:
        raise LpqError("bad-ratio", f"pruning ratio {ratio:g} is below 1")
    keep = max(1, round(total / ratio))
    if ratio > total:
        raise LpqError("bad-ratio", f"ratio {ratio:g} exceeds the {total} batches there are", "choose a smaller --ratio")
    if strategy == "first":
        return list(range(keep))
    rng = np.random.default_rng(seed)
    return sorted(rng.choice(total, size=keep, replace=False).tolist())


def build_header(cfg: RelabelConfig, teacher: Teacher, images: ImageSet) -> Header:
    c = teacher.meta.num_classes
    if cfg.scheme == "none":
        k, indices = c, None
    else:
        k = cfg.top_k or 10
        if k > c:
            raise LpqError("bad-top-k", f"--top-k {k} exceeds the {c} classes")
        indices = IndexCodec(bits=index_bits(c))
    bpe = math.ceil(len(images) / cfg.batch_size)
    total = cfg.epochs * bpe
    return Header(
        tool=f"lpq {__version__}",
        num_classes=c,
        class_names=teacher.meta.class_names,
        images=ImageSetHeader(fingerprint=images.fingerprint(), count=len(images),
                              height=int(images.images.shape[2]), width=int(images.images.shape[3])),
        teacher=TeacherHeader(architecture=teacher.meta.architecture, weights_sha256=teacher.meta.weights_sha256),
        augment=Augment(input_size=cfg.input_size or teacher.meta.image_size, crop_scale=cfg.crop_scale,
                        crop_ratio=cfg.crop_ratio, interpolation=cfg.interpolation, flip_p=cfg.flip_p,
                        mix=cfg.mix, mix_alpha=cfg.mix_alpha, mean=teacher.meta.mean, std=teacher.meta.std),
        relabel=Relabel(epochs=cfg.epochs, batch_size=cfg.batch_size, batches_per_epoch=bpe, seed=cfg.seed),
        prune=Prune(ratio=cfg.ratio, strategy="none" if cfg.ratio == 1 else cfg.strategy, seed=cfg.prune_seed,
                    kept=select_batches(total, cfg.ratio, cfg.strategy, cfg.prune_seed)),
        quant=Quant(scheme=cfg.scheme, k=k, indices=indices,
                    values=ValueCodec(id=cfg.values, relative=cfg.values in ("i8", "i4") and cfg.scheme != "ms"),
                    ms_temperature=cfg.ms_temperature if cfg.scheme == "ms" else None),
    )


def check_compatible(teacher: Teacher, images: ImageSet) -> None:
    if teacher.meta.class_names != images.classes:
        raise LpqError("class-mismatch", f"the teacher's {teacher.meta.num_classes} classes differ from the images' "
                       f"{images.num_classes} ({images.classes[:3]}... vs {teacher.meta.class_names[:3]}...)")


class Labeller:
    """Labels planned batches with the teacher; shared by relabel's main loop and its calibration catch-up."""

    def __init__(self, header: Header, teacher: Teacher, images: ImageSet, device: torch.device) -> None:
        self.header, self.teacher, self.images, self.device = header, teacher, images, device
        self.model = teacher.model.to(device).eval()
        self.hw = np.tile(np.array(images.images.shape[2:]), (len(images), 1))
        self._orders: dict[int, np.ndarray] = {}

    @torch.no_grad()
    def logits(self, bid: int) -> tuple[np.ndarray, BatchRecord, np.ndarray]:
        """(B, C) float32 logits of kept batch ``bid``, its record with quantized labels, and image classes."""
        r, q = self.header.relabel, self.header.quant
        epoch, batch = divmod(bid, r.batches_per_epoch)
        if epoch not in self._orders:
            self._orders = {epoch: epoch_order(r.seed, epoch, self.header.images.count)}
        plan = plan_batch(self.header, epoch, batch, self.hw, self._orders[epoch])
        x = self.teacher.normalize(render(plan, self.images.images, self.header)).to(self.device)
        logits = self.model(x).float().cpu().numpy()
        values, indices = quantize_logits(logits, q.scheme, q.k, q.ms_temperature or 1.0)
        rec = BatchRecord(epoch, batch, plan.augment.crc32(), plan.mix_lambda, plan.mix_box, values, indices)
        return logits, rec, self.images.labels[plan.image_indices].numpy()


def _calib_path(partial: Path) -> Path:
    return partial.with_name(partial.name + ".calib.json")


def _save_calib(path: Path, stats: CalibrationStats, included: list[int]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({"included": included, **stats.to_dict()}))
    os.replace(tmp, path)


def label_part(header: Header, labeller: Labeller, kept: list[int], path: Path, resume: bool, show: bool) -> CalibrationStats:
    """Label ``kept`` batches into ``path`` (resuming its partial file); returns the calibration sums of them."""
    q = header.quant
    temps = schedule_temperatures(TempSchedule())
    stats = CalibrationStats(header.num_classes, temps, q.k)
    writer = LpqlWriter(path, header, resume=resume)
    calib = _calib_path(writer.partial)
    included: list[int] = []
    if resume and calib.exists():
        saved = json.loads(calib.read_text())
        stored = set(writer.stored)
        if set(saved["included"]) <= stored:
            stats.load_dict(saved)
            included = list(saved["included"])
    done = set(writer.stored)
    try:
        # Batches stored before an interruption but after the last calibration save: stats only.
        for bid in sorted(done.difference(included)):
            logits, _, classes = labeller.logits(bid)
            stats.add(logits, classes)
            included.append(bid)
        todo = [b for b in kept if b not in done]
        last_save = time.monotonic()
        with progress(show) as bar:
            task = bar.add_task("relabel", total=len(kept), completed=len(kept) - len(todo), info="batches")
            for bid in todo:
                logits, rec, classes = labeller.logits(bid)
                writer.add(rec)
                stats.add(logits, classes)
                included.append(bid)
                bar.update(task, advance=1)
                if time.monotonic() - last_save > CALIB_SAVE_SECONDS:
                    _save_calib(calib, stats, included)
                    last_save = time.monotonic()
        _save_calib(calib, stats, included)
    finally:
        writer.close()
    return stats


def relabel(cfg: RelabelConfig, show: bool = False) -> RelabelResult:
    out = cfg.output
    if out.exists():
        raise LpqError("output-exists", f"{out} already exists", "choose another -o, or delete it first")
    left = [partial_path(out), *out.parent.glob(f"{out.name}.rank*.partial")]
    if any(p.exists() for p in left) and not cfg.resume:
        raise LpqError("output-partial", f"an interrupted run left {next(p for p in left if p.exists())}",
                       "pass --resume to continue it, or delete it to start over")
    teacher = load_teacher(cfg.teacher, need_stats=False)
    folder = Path(cfg.images.removeprefix("imagefolder:"))
    manifest = read_manifest(folder) if folder.is_dir() else None
    if manifest is not None and not manifest.complete:
        raise LpqError("synth-incomplete", f"{folder} is an unfinished lpq synth run", "finish it with lpq synth --resume")
    images = load_split(cfg.images, "train")
    check_compatible(teacher, images)
    header = build_header(cfg, teacher, images)
    rank, world = init_distributed()
    device = pick_device(cfg.device, rank)
    labeller = Labeller(header, teacher, images, device)
    kept = header.prune.kept
    t0 = time.perf_counter()
    if world == 1:
        stats = label_part(header, labeller, kept, out, cfg.resume, show)
        parts = [partial_path(out)]
    else:
        part = out.with_name(f"{out.name}.rank{rank}")
        label_part(header, labeller, kept[rank::world], part, cfg.resume, show and rank == 0)
        barrier(world)
        parts = [partial_path(out.with_name(f"{out.name}.rank{r}")) for r in range(world)]
        stats = CalibrationStats(header.num_classes, schedule_temperatures(TempSchedule()), header.quant.k)
        if rank == 0:
            _merge(header, parts, out, stats)
        barrier(world)
    seconds = time.perf_counter() - t0
    if rank == 0:
        if world == 1:
            _finish_single(header, out, stats)
        for p in parts:
            _calib_path(p).unlink(missing_ok=True)
    barrier(world)
    samples = sum(header.batch_size_of(b) for b in kept)
    size = out.stat().st_size
    return RelabelResult(output=out, batches_kept=len(kept),
                         batches_total=header.relabel.total_batches, samples=samples, file_bytes=size,
                         bytes_per_sample=size / samples, seconds=seconds, batches_per_second=len(kept) / max(seconds, 1e-9))


def _finish_single(header: Header, out: Path, stats: CalibrationStats) -> None:
    writer = LpqlWriter(out, header, resume=True)
    writer.finish(stats.calibration())


def _merge(header: Header, parts: list[Path], out: Path, stats: CalibrationStats) -> None:
    """Rank 0: copy every part's batch payloads, in batch order, into the final file; sum calibration."""
    payloads: dict[int, bytes] = {}
    for p in parts:
        payloads.update(read_partial_batches(p, header))
        saved = json.loads(_calib_path(p).read_text())
        part_stats = CalibrationStats(header.num_classes, stats.temperatures, stats.k)
        part_stats.load_dict(saved)
        stats.merge(part_stats)
    writer = LpqlWriter(out, header)
    for bid in header.prune.kept:
        writer.add_encoded(bid, payloads[bid])
    writer.finish(stats.calibration())
    for p in parts:
        p.unlink()
