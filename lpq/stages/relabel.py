"""`lpq relabel`: the teacher's soft labels for every kept augmented batch, streamed into a `.lpql` file.

Per epoch a seeded shuffle into batches; per image a RandomResizedCrop and a flip; per batch a CutMix (or
MixUp, or none); the teacher's logits on exactly that batch (LPQLD stage 3; README, "The method"). With
``ratio`` only 1/ratio of the batches is planned and labelled (label pruning that also saves teacher
compute); with ``top_k`` labels are quantized on the way in. Chunks are appended as batches finish, so an
interrupted run resumes where it stopped. Under ``torchrun --nproc-per-node N`` rank r labels kept
batches r, r+N, ... into its own part, and rank 0 merges the parts into one file whose decoded labels
equal a single-process run's.

    lpq relabel syn/ --teacher teacher.lpqt --epochs 300 --batch-size 64 --ratio 10 -o labels.lpql
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from pydantic import BaseModel, Field
from torch.utils.data import DataLoader, Dataset

from lpq import __version__
from lpq.artifacts.manifest import read_manifest
from lpq.artifacts.teacher import Teacher, is_pretrained, load_teacher
from lpq.configs.relabel import RelabelConfig
from lpq.data import ImageSource, default_workers, folder_of, open_images
from lpq.data.transforms import normalize
from lpq.errors import LpqError
from lpq.files import check_new, write_text
from lpq.format import (
    Augment,
    Basis,
    BatchRecord,
    Header,
    LpqlReader,
    LpqlWriter,
    Prune,
    Quant,
    Relabel,
    TempSchedule,
    partial_path,
)
from lpq.format import (
    ImageSet as ImageSetHeader,
)
from lpq.format import (
    Teacher as TeacherHeader,
)
from lpq.format.coverage import BatchMembers, Coverage, members_of, view_counts
from lpq.format.rng import epoch_order
from lpq.format.summary import overhead
from lpq.format.writer import partial_basis, read_partial_batches
from lpq.method.fidelity import BudgetChoice, budget_codes, choose_plan, sample_batches, visited
from lpq.method.pruning import choose_batches, keep_count
from lpq.method.replay import plan_batch, render
from lpq.method.temperature import CalibrationStats
from lpq.method.topk import check_top_k, chosen_k, encode, fit_basis
from lpq.progress import Show, progress
from lpq.runtime import Precision, barrier, broadcast, broadcast_text, init_distributed, pick_device

CALIB_SAVE_SECONDS = 10.0  # how often the resumable calibration sums are saved beside the partial file


class RelabelResult(BaseModel):
    output: Path
    batches_kept: int
    batches_total: int
    samples: int
    file_bytes: int
    bytes_per_sample: float
    coverage: Coverage = Field(description="labelled views per image")
    seconds: float
    batches_per_second: float
    choice: BudgetChoice | None = None


def build_header(cfg: RelabelConfig, teacher: Teacher, images: ImageSource, precision: str = "float32") -> Header:
    c = teacher.meta.num_classes
    k = chosen_k(cfg.scheme, None if cfg.top_k is None else int(cfg.top_k), c)
    check_top_k(cfg.scheme, k, c, cfg.tail_points)
    bpe = math.ceil(len(images) / cfg.batch_size)
    total = cfg.epochs * bpe
    members = BatchMembers(cfg.seed, len(images), cfg.batch_size)
    kept = choose_batches(
        list(range(total)), keep_count(total, total, cfg.ratio, cfg.ratio), cfg.strategy, cfg.prune_seed, members
    )
    sizes = images.sizes()
    height, width = (int(sizes[0, 0]), int(sizes[0, 1])) if (sizes == sizes[0]).all() else (0, 0)
    m = teacher.meta
    return Header(
        tool=f"lpq {__version__}",
        num_classes=c,
        class_names=teacher.meta.class_names,
        images=ImageSetHeader(fingerprint=images.fingerprint(), count=len(images), height=height, width=width),
        teacher=TeacherHeader(
            architecture=teacher.meta.architecture, weights_sha256=teacher.meta.weights_sha256, precision=precision
        ),
        augment=Augment.of(
            m.input_spec(),
            input_size=cfg.input_size or m.image_size,
            crop_scale=cfg.crop_scale,
            crop_ratio=cfg.crop_ratio,
            interpolation=cfg.interpolation,
            flip_p=cfg.flip_p,
            mix=cfg.mix,
            mix_alpha=cfg.mix_alpha,
        ),
        relabel=Relabel(epochs=cfg.epochs, batch_size=cfg.batch_size, batches_per_epoch=bpe, seed=cfg.seed),
        prune=Prune(
            ratio=cfg.ratio,
            strategy="none" if cfg.ratio == 1 else cfg.strategy,
            seed=cfg.prune_seed,
            kept=kept,
        ),
        quant=Quant.of(cfg.scheme, k, cfg.values, c, cfg.ms_temp, cfg.tail_points, cfg.sample_temp, cfg.rank),
    )


def check_compatible(teacher: Teacher, images: ImageSource) -> None:
    if teacher.meta.class_names != images.classes:
        raise LpqError(
            "class-mismatch",
            f"the teacher's {teacher.meta.num_classes} classes differ from the images' "
            f"{len(images.classes)} ({images.classes[:3]}... vs {teacher.meta.class_names[:3]}...)",
        )


class RenderedBatch(NamedTuple):
    """A kept batch planned and rendered for the teacher (built in a DataLoader worker)."""

    batch_id: int
    inputs: torch.Tensor  # (B, 3, S, S) normalized for the teacher
    aug_crc: int
    mix_lambda: float
    mix_box: tuple[int, int, int, int]
    classes: torch.Tensor  # (B,) the class of each sample's own image


class PlannedBatches(Dataset):
    """Item i: batch ``ids[i]`` planned from the seed and rendered from the image source."""

    def __init__(self, header: Header, images: ImageSource, ids: list[int]) -> None:
        self.header, self.images, self.ids = header, images, ids
        self.hw = images.sizes()
        self.spec = header.augment.input()
        self._order: tuple[int, np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> RenderedBatch:
        r = self.header.relabel
        epoch, batch = divmod(self.ids[i], r.batches_per_epoch)
        if self._order is None or self._order[0] != epoch:  # batches come mostly in epoch order
            self._order = (epoch, epoch_order(r.seed, epoch, self.header.images.count))
        plan = plan_batch(self.header, epoch, batch, self.hw, self._order[1])
        x = normalize(self.spec, render(plan, self.images, self.header))
        return RenderedBatch(
            self.ids[i],
            x,
            plan.augment.crc32(),
            plan.mix_lambda,
            plan.mix_box,
            self.images.labels[torch.from_numpy(plan.image_indices)],
        )


class Labeller:
    """The teacher on rendered batches: logits, and the batch record with the header's quantized labels (on
    ``basis``, for scheme basis)."""

    def __init__(self, header: Header, teacher: Teacher, precision: Precision, basis: Basis | None = None) -> None:
        self.header, self.precision, self.basis = header, precision, basis
        self.model = precision.model(teacher.model).eval()

    @torch.no_grad()
    def __call__(self, item: RenderedBatch) -> tuple[np.ndarray, BatchRecord]:
        """(B, C) float32 logits of the batch, and its record with quantized labels."""
        q, r = self.header.quant, self.header.relabel
        with self.precision.autocast():
            logits = self.model(self.precision.inputs(item.inputs)).float().cpu().numpy()
        if not np.isfinite(logits).all():  # float16 activations can overflow where float32's would not
            raise LpqError(
                "relabel-overflow",
                f"the teacher's logits of batch {item.batch_id} are not finite under {self.precision.name}",
                "rerun with --amp bf16 or --amp none (finished batches are kept with --resume)",
            )
        values, indices = encode(logits, q, seed=[r.seed, item.batch_id], basis=self.basis)
        epoch, batch = divmod(item.batch_id, r.batches_per_epoch)
        return logits, BatchRecord(epoch, batch, item.aug_crc, item.mix_lambda, item.mix_box, values, indices)


Render = Callable[[list[int]], Iterable[RenderedBatch]]


def renderer(header: Header, images: ImageSource, workers: int, device: torch.device) -> Render:
    """Batch ids -> their rendered batches, made in ``workers`` DataLoader processes (0: in this one)."""
    return lambda ids: DataLoader(
        PlannedBatches(header, images, ids),
        batch_size=None,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        prefetch_factor=4 if workers else None,
    )


def _calib_path(partial: Path) -> Path:
    return partial.with_name(partial.name + ".calib.json")


def _load_calib(path: Path) -> dict | None:
    """Saved calibration sums, or None: unreadable sums are recomputed from the stored batches."""
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    ok = isinstance(saved, dict) and "included" in saved and CalibrationStats.readable(saved)
    return saved if ok else None


def _save_calib(path: Path, stats: CalibrationStats, included: list[int]) -> None:
    write_text(path, json.dumps({"included": included, **stats.to_dict()}))


def label_part(
    header: Header,
    render_ids: Render,
    labeller: Labeller,
    kept: list[int],
    path: Path,
    resume: bool,
    show: bool | Show,
    log: Path | None = None,
) -> CalibrationStats:
    """Label ``kept`` batches into ``path`` (resuming its partial file); returns the calibration sums of them."""
    stats = CalibrationStats.for_header(header)
    writer = LpqlWriter(path, header, basis=labeller.basis, resume=resume)
    calib = _calib_path(writer.partial)
    included: list[int] = []
    saved = _load_calib(calib) if resume else None
    if saved is not None and set(saved["included"]) <= set(writer.stored):
        stats.load_dict(saved)
        included = list(saved["included"])
    done = set(writer.stored)
    try:
        # Batches stored before an interruption but after the last calibration save: stats only.
        for item in render_ids(sorted(done.difference(included))):
            logits, _ = labeller(item)
            stats.add(logits, item.classes.numpy())
            included.append(item.batch_id)
        todo = [b for b in kept if b not in done]
        last_save = time.monotonic()
        with progress(show, log=log) as bar:
            task = bar.add_task("relabel", total=len(kept), completed=len(kept) - len(todo), info="batches")
            for item in render_ids(todo):
                logits, rec = labeller(item)
                writer.add(rec)
                stats.add(logits, item.classes.numpy())
                included.append(item.batch_id)
                bar.update(task, advance=1)
                if time.monotonic() - last_save > CALIB_SAVE_SECONDS:
                    _save_calib(calib, stats, included)
                    last_save = time.monotonic()
        _save_calib(calib, stats, included)
    finally:
        writer.close()
    return stats


def _budgeted(
    header: Header, render_ids: Render, labeller: Labeller, cfg: RelabelConfig
) -> tuple[BudgetChoice, Quant, dict[int, np.ndarray]]:
    """Pruning, code and k of ``cfg.budget`` (lpq.method.fidelity.choose_plan), chosen on the full logits of a seeded
    sample of the batches ``--ratio`` keeps (about BUDGET_VIEWS views) before any is written; the file's own
    overhead is measured by writing that sample with its calibration to a probe beside the output (deleted).
    8-bit codes unless --values asks for 4. Also the sample's logits by batch id, which a basis code's fit reuses."""
    kept = header.prune.kept
    ids = sample_batches(header)
    probe = cfg.output.with_name(cfg.output.name + ".budget-probe")
    stats = CalibrationStats.for_header(header)
    writer = LpqlWriter(probe, header.model_copy(update={"prune": header.prune.model_copy(update={"kept": ids})}))
    rows: dict[int, np.ndarray] = {}
    try:
        for item in render_ids(ids):
            logits, rec = labeller(item)
            writer.add(rec)
            stats.add(logits, item.classes.numpy())
            rows[item.batch_id] = logits
        writer.finish(stats.calibration())
        with LpqlReader(probe) as r:
            probed = overhead(r)
        unlisted = len(json.dumps(kept)) - len(json.dumps(ids))  # the header's kept ids the probe did not list
        spent = dataclasses.replace(probed, fixed=probed.fixed + unlisted)
    finally:
        writer.discard()
        probe.unlink(missing_ok=True)
    views = sum(header.batch_size_of(b) for b in kept)
    temps = visited(TempSchedule(), header.relabel.epochs)  # the schedule relabel records in its calibration
    values = "i4" if cfg.values == "i4" else "i8"
    logits = np.concatenate(list(rows.values()))
    codes = budget_codes(cfg.scheme)
    plan = choose_plan(logits, cfg.budget or 0.0, header.prune.ratio, temps, spent, views, len(kept), values, codes)
    return (*plan, rows)


def _basis(
    header: Header,
    render_ids: Render,
    teacher: Teacher,
    precision: Precision,
    world: int,
    held: Basis | None,
    known: dict[int, np.ndarray],
) -> Basis:
    """Scheme basis's basis: ``held`` (what this rank's partial file holds: a resumed run keeps it), else fitted
    (lpq.method.topk.fit_basis) on the full logits of lpq.method.fidelity.sample_batches, of which the batches in
    ``known`` (--budget's sample) are not labelled again; rank 0's under torchrun, sent to the others."""
    if held is None:
        c = header.num_classes
        full = Labeller(header.model_copy(update={"quant": Quant.of("none", c, "f32", c)}), teacher, precision)
        ids = sample_batches(header)
        todo = [b for b in ids if b not in known]
        fresh = {item.batch_id: full(item)[0] for item in render_ids(todo)}
        logits = np.concatenate([known[b] if b in known else fresh[b] for b in ids])
        held = fit_basis(logits, header.quant.rank or 0)
    return Basis(*(broadcast(a, world, precision.device) for a in (held.mean, held.weights)))


def _check_places(cfg: RelabelConfig) -> None:
    """The output is new (or an interrupted run of it resumes), and the images are no unfinished synth run."""
    out = cfg.output
    check_new(out)
    left = [partial_path(out), *out.parent.glob(f"{out.name}.rank*.partial")]
    if any(p.exists() for p in left) and not cfg.resume:
        raise LpqError(
            "output-partial",
            f"an interrupted run left {next(p for p in left if p.exists())}",
            "pass --resume to continue it, or delete it to start over",
        )
    folder = folder_of(cfg.images)
    manifest = read_manifest(folder) if folder is not None else None
    if manifest is not None and not manifest.complete:
        raise LpqError(
            "synth-incomplete", f"{folder} is an unfinished lpq synth run", "finish it with lpq synth --resume"
        )


def relabel(cfg: RelabelConfig, show: bool | Show = False, teacher: Teacher | None = None) -> RelabelResult:
    """Label the kept batches of ``cfg.images`` with ``cfg.teacher``, or with ``teacher`` (a model of your own,
    `lpq.artifacts.teacher.module_teacher`) when given, into ``cfg.output``."""
    out = cfg.output
    if (teacher is None) == (cfg.teacher is None):
        raise LpqError("teacher-missing" if teacher is None else "teacher-twice", "relabel needs exactly one teacher")
    _check_places(cfg)
    images = open_images(cfg.images)
    if cfg.teacher_classes and (cfg.teacher is None or not is_pretrained(cfg.teacher)):
        raise LpqError(
            "teacher-classes-file",
            f"--teacher-classes cuts pretrained weights; {cfg.teacher} is a teacher file, its classes fixed",
            "leave --teacher-classes out (lpq squeeze --teacher-classes already chose the rows), or pass weights",
        )
    if teacher is None:
        teacher = load_teacher(
            cfg.teacher, need_stats=False, classes=images.classes, teacher_classes=cfg.teacher_classes
        )
    check_compatible(teacher, images)
    rank, world = init_distributed()
    precision = Precision.choose(cfg.amp, pick_device(cfg.device, rank), inference=True)
    header = build_header(cfg, teacher, images, precision.name)
    render_ids = renderer(header, images, default_workers() if cfg.workers is None else cfg.workers, precision.device)
    choice, sample = None, {}
    if cfg.budget is not None:  # rank 0 chooses (its probe file is one), and every rank takes its choice
        mine = _budgeted(header, render_ids, Labeller(header, teacher, precision), cfg) if rank == 0 else None
        sample = mine[2] if mine else {}
        text = json.dumps([mine[0].model_dump(), mine[1].model_dump()]) if mine else ""
        sent = broadcast_text(text, world, precision.device)
        picked = json.loads(sent)
        choice, quant = BudgetChoice.model_validate(picked[0]), Quant.model_validate(picked[1])
        if choice.pruning != header.prune.ratio:  # as if --ratio had said it
            header = build_header(cfg.model_copy(update={"ratio": choice.pruning}), teacher, images, precision.name)
        header = header.model_copy(update={"quant": quant})
    basis = None
    if header.quant.scheme == "basis":
        part = out if world == 1 else out.with_name(f"{out.name}.rank{rank}")
        held = partial_basis(partial_path(part), header) if cfg.resume else None
        basis = _basis(header, render_ids, teacher, precision, world, held, sample)
    labeller = Labeller(header, teacher, precision, basis)
    kept = header.prune.kept
    log = out.with_name(out.name + ".log.txt")  # beside the label file; rank 0's lines under torchrun
    t0 = time.perf_counter()
    if world == 1:
        stats = label_part(header, render_ids, labeller, kept, out, cfg.resume, show, log)
        parts = [partial_path(out)]
    else:
        part = out.with_name(f"{out.name}.rank{rank}")
        label_part(
            header,
            render_ids,
            labeller,
            kept[rank::world],
            part,
            cfg.resume,
            show if rank == 0 else False,
            log if rank == 0 else None,
        )
        barrier(world)
        parts = [partial_path(out.with_name(f"{out.name}.rank{r}")) for r in range(world)]
        stats = CalibrationStats.for_header(header)
        if rank == 0:
            _merge(header, parts, out, stats, basis)
        barrier(world)
    seconds = time.perf_counter() - t0
    if rank == 0:
        if world == 1:
            _finish_single(header, out, stats, basis)
        for p in parts:
            _calib_path(p).unlink(missing_ok=True)
    barrier(world)
    samples = sum(header.batch_size_of(b) for b in kept)  # relabelled batches are derived: the size rule holds
    size = out.stat().st_size
    return RelabelResult(
        output=out,
        batches_kept=len(kept),
        batches_total=header.relabel.total_batches,
        samples=samples,
        file_bytes=size,
        bytes_per_sample=size / samples,
        coverage=Coverage.of(view_counts(kept, members_of(header))),
        seconds=seconds,
        batches_per_second=len(kept) / max(seconds, 1e-9),
        choice=choice,
    )


def _finish_single(header: Header, out: Path, stats: CalibrationStats, basis: Basis | None) -> None:
    writer = LpqlWriter(out, header, basis=basis, resume=True)
    writer.finish(stats.calibration())


def _merge(header: Header, parts: list[Path], out: Path, stats: CalibrationStats, basis: Basis | None) -> None:
    """Rank 0: copy every part's batch payloads, in batch order, into the final file; sum calibration."""
    payloads: dict[int, bytes] = {}
    for p in parts:
        payloads.update(read_partial_batches(p, header))
        saved = _load_calib(_calib_path(p))
        if saved is None:
            raise LpqError("relabel-part-corrupt", f"{_calib_path(p)} is unreadable", "rerun with --resume")
        part_stats = CalibrationStats.for_header(header)
        part_stats.load_dict(saved)
        stats.merge(part_stats)
    writer = LpqlWriter(out, header, basis=basis)
    for bid in header.prune.kept:
        writer.add_encoded(bid, payloads[bid])
    writer.finish(stats.calibration())
    for p in parts:
        p.unlink()
