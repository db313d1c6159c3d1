"""`lpq train`: a student on distilled images and `.lpql` labels, with Dynamic Knowledge Reuse and Calibrated
Alignment (LPQLD stage 6; README, "The method"), evaluated on a real test split.

Loss: KL(target || softmax(student / T_s)), batch mean, optionally times T^2. The target is rebuilt from the
stored labels at the teacher temperature of the epoch (DKR: step or cosine schedules over the same
logits). With ``calibrate`` the student temperature T_s is re-fitted after every epoch on a grid (the label
file's, 0.01 to 1 in 100 points by default, or ``ca_grid``) to the value minimizing that KL (CA): on the
epoch's first stored batches re-run in eval mode (``first-batches``), or on the training-mode output of its
last batch, before the optimizer step, as the authors' code does (``last-batch``). ``student_temp="follow"``
sets T_s to the epoch's teacher temperature instead (the authors' default without CA). Temperature defaults
come from the label file's calibration metadata, else the authors' (start 20, x0.7 every 30 of 300 epochs,
floor 2). ``targets="hard"`` is the baseline without a teacher: the same
replayed batches with the images' own classes as targets (mixed as CutMix mixed the images), no
temperatures.

``input_size`` trains a student at a resolution of its own: each stored view is rendered at that size (the same
crop box, the CutMix box scaled; lpq.method.replay), and the test images are prepared as the teacher's were, at
that size; a 224 px teacher's labels train a 32 px ConvNet this way.

Evaluation on the test split runs ``evals`` times, evenly spread, the last epoch always among them: the
headline is the final epoch, never the best one. The run folder holds config.json, metrics.jsonl (with
training and evaluation seconds per epoch), last weights (safetensors), a resume state (read with
``weights_only=True``) and result.json.

    lpq train syn/ labels.lpql --model convnet --eval-data digits --epochs 100 -o run/
"""

from __future__ import annotations

import contextlib
import json
import math
import statistics
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from torch import nn
from torch.utils.data import DataLoader

from lpq.artifacts.checkpoint import TrainingState
from lpq.artifacts.manifest import read_manifest
from lpq.artifacts.run import CONFIG, LOCK, METRICS, PLAN, RunRecord, rank0
from lpq.artifacts.teacher import load_teacher
from lpq.configs.train import StudentPlan, TrainConfig, TrainPlan
from lpq.data import (
    ImageSource,
    check_fits,
    default_workers,
    folder_of,
    open_images,
    open_split,
    parse_data,
    recorded,
)
from lpq.data import batches as image_batches
from lpq.errors import LpqError
from lpq.files import atomic, write_model, write_text
from lpq.format import Basis, Header, LpqlReader, StudentTemp, TempSchedule
from lpq.method.batches import BatchDraw, ReplayedBatch, StoredBatches, shard_rows
from lpq.method.loss import StudentTemperature
from lpq.method.replay import check_images, view_input
from lpq.method.targets import hard_targets, stored_targets
from lpq.method.temperature import teacher_temperature
from lpq.models import build_model, evaluate
from lpq.progress import Show, progress
from lpq.runtime import Precision, barrier, init_distributed, pick_device

STATE = "state.pt"


def epoch_line(m: EpochMetrics, epochs: int) -> str:
    """The log line of a finished epoch."""
    scored = f", test top-1 {m.top1:.2f}% top-5 {m.top5:.2f}%" if m.top1 is not None and m.top5 is not None else ""
    return (
        f"epoch {m.epoch}/{epochs}: loss {m.loss:.4f}, T {m.teacher_temp:.3g}, T_s {m.student_temp:.3g}, "
        f"lr {m.lr:.3g}, {m.seconds:.1f} s{scored}"
    )


class EpochMetrics(BaseModel):
    model_config = ConfigDict(ser_json_inf_nan="strings")  # a diverged loss is recorded as "NaN" and read back

    epoch: int
    loss: float
    agreement: float = Field(description="% of samples where the student's top-1 is the target's")
    teacher_temp: float
    student_temp: float
    lr: float
    seconds: float = Field(description="training seconds of the epoch (temperature fit included)")
    eval_seconds: float = Field(0.0, description="seconds spent evaluating on the test split after the epoch")
    batches_per_second: float
    top1: float | None = None
    top5: float | None = None


class TrainResult(BaseModel):
    output: Path
    seed: int
    epochs: int
    top1: float = Field(description="test top-1 % at the final epoch")
    top5: float
    label_bytes: int
    label_scheme: str
    train_seconds: float
    eval_seconds: float
    ca_edge_share: float | None = Field(
        None, description="share of epochs whose fitted T_s is the CA grid's minimum or maximum (with CA)"
    )


def eval_epochs(epochs: int, evals: int) -> set[int]:
    """The (1-based) epochs after which the test split is evaluated: evenly spread, the last one always."""
    n = min(evals, epochs)
    return {round(i * epochs / n) for i in range(1, n + 1)}


@dataclass
class Student(TrainingState):
    """The model being trained (``net`` wraps it in DDP when distributed), its training state and precision."""

    net: nn.Module
    precision: Precision

    @classmethod
    def build(cls, plan: TrainPlan, header: Header, precision: Precision, world: int, steps_per_epoch: int) -> Student:
        torch.manual_seed(plan.seed)
        device = precision.device
        model = precision.model(build_model(plan.model, header.num_classes, view_input(header, plan.input_size).size))
        if world > 1 and device.type == "cuda":  # BatchNorm over the global batch, as one process (gloo has none)
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        net = (
            model
            if world == 1
            else nn.parallel.DistributedDataParallel(
                model, device_ids=[device.index] if device.type == "cuda" else None
            )
        )
        lr, wd = plan.lr, plan.weight_decay
        opt: torch.optim.Optimizer = (
            torch.optim.AdamW(model.parameters(), lr, weight_decay=wd)
            if plan.optimizer == "adamw"
            else torch.optim.SGD(model.parameters(), lr, momentum=plan.momentum, weight_decay=wd)
        )
        total, warm = plan.epochs * steps_per_epoch, plan.warmup_epochs * steps_per_epoch
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt,
            lambda s: (s + 1) / warm if s < warm else 0.5 * (1 + math.cos(math.pi * (s - warm) / max(1, total - warm))),
        )
        return cls(model, opt, sched, precision.scaler(), net, precision)

    def save_epoch(self, path: Path, epoch: int, student_temp: float) -> None:
        """The resume state at ``path`` and the weights beside it (last.safetensors), each written atomically."""
        from safetensors.torch import save_file

        self.save(path, epoch=epoch, student_temp=student_temp)
        with atomic(path.with_name("last.safetensors")) as tmp:
            save_file({k: v.detach().cpu().contiguous() for k, v in self.model.state_dict().items()}, str(tmp))

    def resume(self, path: Path) -> tuple[int, float]:
        """Restore a checkpoint; returns (epochs done, student temperature)."""
        state = self.load(path, "train")
        return int(state["epoch"]), float(state["student_temp"])


@dataclass
class EpochStats:
    loss: float
    agreement: float
    seconds: float


def make_targets(
    batch: ReplayedBatch,
    header: Header,
    targets: str,
    temperature: float,
    image_classes: torch.Tensor,
    basis: Basis | None = None,
) -> torch.Tensor:
    """(B, C) target distributions: the stored labels at ``temperature`` (``basis``: the file's, for scheme
    basis), or the mixed one-hot classes."""
    if targets == "hard":
        return hard_targets(image_classes[batch.image_indices], batch.partner, batch.mix_lambda, header.num_classes)
    return stored_targets(batch.values, batch.indices, header, temperature, basis)


def train_epoch(
    student: Student,
    batches: Iterator[ReplayedBatch],
    steps: int,
    header: Header,
    plan: TrainPlan,
    temp: float,
    temps: StudentTemperature,
    image_classes: torch.Tensor,
    advance: Callable[[str], None],
    rank: int = 0,
    world: int = 1,
    basis: Basis | None = None,
) -> EpochStats:
    """One epoch of KD steps at teacher temperature ``temp``, the loss at ``temps``' T_s, which keeps what its
    refit needs. Under torchrun each rank
    trains on its slice of every stored batch, its loss weighted by the slice's share, so the averaged gradient
    is the whole batch's and a step is one process's step (BatchNorm: per slice on CPU, synchronized on GPUs)."""
    student.net.train()
    t0 = time.perf_counter()
    loss_sum = agree = seen = 0.0
    precision, scaler = student.precision, student.scaler
    for _ in range(steps):
        batch = next(batches)
        target = make_targets(batch, header, plan.targets, temp, image_classes, basis)
        rows, weight = shard_rows(len(target), rank, world)
        target = target[rows].to(precision.device, non_blocking=True)
        with precision.autocast():
            logits = student.net(precision.inputs(batch.inputs[rows]))
        loss = temps.loss(logits, target, temp if plan.t2_scaling else None)
        student.opt.zero_grad(set_to_none=True)
        scaler.scale(loss * weight).backward()
        scaler.step(student.opt)
        scaler.update()
        student.sched.step()
        if weight:  # a stand-in row trains nothing and is not counted
            loss_sum += loss.item() * len(target)
            agree += float((logits.argmax(1) == target.argmax(1)).sum())
            seen += len(target)
        temps.observe(batch.inputs[rows], logits, target)
        advance(f"loss {loss_sum / seen:.4f} T {temp:.2f} Ts {temps.value:.2f}")
    return EpochStats(loss_sum / seen, 100 * agree / seen, time.perf_counter() - t0)


def student_temperature(plan: StudentPlan, first: float) -> StudentTemperature:
    """T_s of a run, starting at ``first``: fixed, following the teacher's, or refitted by CA."""
    lo, hi, points = plan.grid
    return StudentTemperature(first, plan.temp == "follow", plan.fit, torch.linspace(lo, hi, points))


def _read_labels(path: Path) -> tuple[Header, Basis | None, TempSchedule | None, StudentTemp]:
    """The header and basis (scheme basis), and the label file's recommended teacher schedule and
    student-temperature grid."""
    with LpqlReader(path) as r:
        c = r.calibration
        return r.header, r.basis, c.teacher_schedule if c else None, c.student if c else StudentTemp()


def default_eval_data(images: str) -> str:
    """Where a student is evaluated when --eval-data is not given: the data the images' teacher was trained on
    (a synthesized folder's manifest names the teacher, whose file records its data), or, for images that are a
    dataset themselves, that dataset's held-out split. Never a guess: otherwise a one-line error."""
    folder = folder_of(images)
    manifest = read_manifest(folder) if folder is not None else None
    if manifest is None:
        return images  # a named dataset or a data folder: its own test split
    hint = "pass --eval-data with the real data the teacher was trained on"
    try:
        data = load_teacher(manifest.teacher, need_stats=False).meta.data
    except LpqError:
        raise LpqError(
            "eval-data-unknown", f"{folder} was synthesized by {manifest.teacher}, which is gone", hint
        ) from None
    try:
        parse_data(data)
    except LpqError:
        raise LpqError("eval-data-unknown", f"the teacher's data {data} is gone", hint) from None
    return data


def _load_data(plan: TrainPlan, header: Header) -> tuple[ImageSource, ImageSource]:
    """The distilled images (checked against the labels' fingerprint) and the real test split."""
    images = open_images(plan.images)
    check_images(images, header, plan.labels, plan.images)
    evalset = open_split(plan.eval_data or default_eval_data(plan.images), "test", plan.root)
    if evalset.classes != header.class_names:
        raise LpqError("class-mismatch", f"--eval-data {plan.eval_data} has other classes than the labels")
    check_fits(evalset, view_input(header, plan.input_size))
    return images, evalset


def _plan_older_run(record: RunRecord) -> None:
    """A run lpq 0.2 recorded has no plan.json: its config.json holds its settings with every default filled, which
    are options whose plan is theirs. Written once, so such a run resumes (and is checked) as a current one."""
    held = record.held()
    if PLAN in held or CONFIG not in held:
        return
    saved = record.read_json(CONFIG)
    try:
        plan = TrainConfig.model_validate(saved).plan(None, StudentTemp())
    except (ValidationError, TypeError):
        return  # no settings of a run: check() refuses the folder as it finds it
    write_text(record.file(PLAN), json.dumps(plan.identity(), indent=2))


def _check_progress(record: RunRecord, done: int, epochs: int) -> None:
    """A checkpoint's epoch count agrees with the run's metrics: each epoch's row is written just before its
    checkpoint, so the rows end at the checkpoint's epoch or one after it (killed in between)."""
    last = max((m.epoch for m in record.rows(EpochMetrics)), default=0)
    if not 0 <= done <= epochs or last not in (done, done + 1):
        raise LpqError(
            "resume-inconsistent",
            f"the checkpoint in {record.root} says {done} epochs were done, its {METRICS} records {last}",
            "the checkpoint or the metrics were edited, or come from two runs: choose another -o",
        )


def _so_far(lines: list[EpochMetrics]) -> tuple[float, float, EpochMetrics | None]:
    """(training seconds, evaluation seconds, the last evaluated epoch) of the recorded epochs."""
    scored = [m for m in lines if m.top1 is not None]
    return sum(m.seconds for m in lines), sum(m.eval_seconds for m in lines), scored[-1] if scored else None


def _edge_share(lines: list[EpochMetrics], lo: float, hi: float) -> float:
    """The share of recorded epochs whose fitted T_s sits on the CA grid's edge: a fit pinned there says the grid,
    not the data, chose it."""
    fits = [m.student_temp for m in lines]
    edge = sum(math.isclose(t, lo, rel_tol=1e-5) or math.isclose(t, hi, rel_tol=1e-5) for t in fits)
    return edge / max(len(fits), 1)


def _from_rank0(values: tuple[float, ...], world: int) -> tuple[float, ...]:
    """Rank 0's values, for every rank (only rank 0 evaluates; CA fits on rank 0's batches)."""
    if world == 1:
        return values
    import torch.distributed as dist

    t = torch.tensor(values, dtype=torch.float64)
    dist.broadcast(t, src=0)
    return tuple(float(v) for v in t)


def _share(world: int) -> Callable[[float], float]:
    """CA's fitted T_s as every rank takes it: rank 0's."""
    return lambda value: _from_rank0((value,), world)[0]


def timed_evaluation(
    model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]], precision: Precision
) -> tuple[float, float, float]:
    """Top-1 and top-5 on the evaluation batches, and the seconds it took."""
    t0 = time.perf_counter()
    with precision.autocast():
        top1, top5 = evaluate(model, batches, precision.device)
    return top1, top5, time.perf_counter() - t0


def train(cfg: TrainConfig, show: bool | Show = False) -> TrainResult:
    """Train one student (``cfg.seeds`` is for `train_seeds`) and evaluate it at its final epoch. The run folder
    is locked while it trains (rank 0 holds the lock under torchrun)."""
    with RunRecord(cfg.output, what="training").lock() if rank0() else contextlib.nullcontext():
        return _train(cfg, show)


@dataclass
class Book:
    """What a run keeps of itself: its record (metrics rows, checkpoints, result), its timings, its evaluations on
    the test split. Rank 0 keeps the book; under torchrun the other ranks hold one that writes nothing and
    receive rank 0's scores."""

    record: RunRecord
    rank: int
    world: int
    epochs: int
    precision: Precision
    evaluation: Iterable[tuple[torch.Tensor, torch.Tensor]] = ()
    train_seconds: float = 0.0
    eval_seconds: float = 0.0
    last_eval: EpochMetrics | None = None

    @classmethod
    def open(cls, given: TrainConfig, plan: TrainPlan, rank: int, world: int, precision: Precision) -> Book:
        """The run's place checked (a fresh run takes over a folder that saved no progress; --resume needs the same
        settings), before a board writes its files into the folder."""
        record = RunRecord(plan.output, what="training", settings=PLAN)
        if rank == 0:
            _plan_older_run(record)
            record.check(plan.identity(), plan.resume)
            record = record.with_board(plan.tensorboard, plan.wandb, given.identity())
        return cls(record, rank, world, plan.epochs, precision)

    def start(
        self,
        given: TrainConfig,
        plan: TrainPlan,
        done: int,
        resumed: bool,
        evaluation: Iterable[tuple[torch.Tensor, torch.Tensor]],
    ) -> None:
        """Record the settings (the plan, and the options it was resolved from); keep the metrics of the epochs a
        checkpoint holds (later ones are redone)."""
        self.evaluation = evaluation
        if self.rank != 0:
            return
        if resumed:
            _check_progress(self.record, done, plan.epochs)
        self.record.start(plan.identity(), given.identity())
        self.record.write_rows([m for m in self.record.rows(EpochMetrics) if m.epoch <= done])
        self.train_seconds, self.eval_seconds, self.last_eval = _so_far(self.record.rows(EpochMetrics))

    def epoch(self, m: EpochMetrics, student: Student, evaluate: bool, note: Callable[[str], None]) -> None:
        """A finished epoch: evaluated when its turn, its row written, then its checkpoint."""
        self.train_seconds += m.seconds
        if self.rank != 0:
            return
        if evaluate:
            top1, top5, spent = timed_evaluation(student.model, self.evaluation, self.precision)
            self.eval_seconds += spent
            m = self.last_eval = m.model_copy(update={"top1": top1, "top5": top5, "eval_seconds": spent})
        self.record.append(m)
        note(epoch_line(m, self.epochs))
        student.save_epoch(self.record.root / STATE, m.epoch, m.student_temp)

    def scores(self, student: Student, end: int) -> tuple[float, float]:
        """Top-1 and top-5 at the session's last epoch (evaluated now if it was not), on every rank."""
        scores = (0.0, 0.0)
        if self.rank == 0 and self.last_eval is not None and self.last_eval.epoch == end:
            scores = (self.last_eval.top1 or 0.0, self.last_eval.top5 or 0.0)
        elif self.rank == 0:  # a session stopped between evaluations
            top1, top5, spent = timed_evaluation(student.model, self.evaluation, self.precision)
            scores, self.eval_seconds = (top1, top5), self.eval_seconds + spent
        top1, top5 = _from_rank0(scores, self.world)
        return top1, top5

    def finish(self, plan: TrainPlan, header: Header, end: int, scores: tuple[float, float]) -> TrainResult:
        q = header.quant
        edges = _edge_share(self.record.rows(EpochMetrics), *plan.student.grid[:2]) if self.rank == 0 else None
        result = TrainResult(
            output=plan.output,
            seed=plan.seed,
            epochs=end,
            top1=scores[0],
            top5=scores[1],
            label_bytes=plan.labels.stat().st_size,
            label_scheme=f"{q.name} {q.values.id} x{header.prune.ratio:g}",
            train_seconds=self.train_seconds,
            eval_seconds=self.eval_seconds,
            ca_edge_share=edges if plan.student.fit else None,
        )
        if self.rank == 0 and end == plan.epochs:
            self.record.finish(result)
        if self.record.board is not None:
            self.record.board.close()
        return result


def _loader(
    plan: TrainPlan, header: Header, images: ImageSource, epochs: range, workers: int, device: torch.device
) -> DataLoader:
    """The stored batches of ``epochs``, replayed by ``workers`` processes in the order training takes them."""
    return DataLoader(
        StoredBatches(plan.labels, images, plan.input_size),
        sampler=BatchDraw.of(header, plan.seed, epochs),
        batch_size=None,
        num_workers=workers,
        prefetch_factor=4 if workers else None,
        pin_memory=device.type == "cuda",
    )


def placed(cfg: TrainConfig) -> TrainConfig:
    """The options with their places absolute and the evaluation data named, so the run's config.json resolves from
    any working directory (lpq compare, a moved run) and says what the run was evaluated on."""
    eval_data = default_eval_data(cfg.images) if cfg.eval_data is None else cfg.eval_data
    return cfg.model_copy(
        update={"images": recorded(cfg.images), "labels": cfg.labels.resolve(), "eval_data": recorded(eval_data)}
    )


def _train(cfg: TrainConfig, show: bool | Show) -> TrainResult:
    rank, world = init_distributed()
    given = placed(cfg)
    header, basis, calibration, student_temp = _read_labels(given.labels)
    plan = given.plan(calibration, student_temp)
    precision = Precision.choose(plan.amp, pick_device(plan.device, rank))
    book = Book.open(given, plan, rank, world, precision)
    images, evalset = _load_data(plan, header)
    steps = header.relabel.batches_per_epoch  # under torchrun too: every rank takes every batch, a slice of it
    student = Student.build(plan, header, precision, world, steps)
    schedule = plan.schedule
    resumed = plan.resume and (plan.output / STATE).exists()  # else: killed before its first checkpoint, start over
    t_s = plan.student.temp
    first = teacher_temperature(schedule, 0, plan.epochs) if t_s == "follow" else t_s
    start, first = student.resume(plan.output / STATE) if resumed else (0, first)
    temps = student_temperature(plan.student, first)
    workers = default_workers() if plan.workers is None else plan.workers
    evaluation = image_batches(evalset, view_input(header, plan.input_size), batch_size=512, workers=workers)
    book.start(given, plan, start, resumed, evaluation)
    end = plan.epochs if plan.stop_after is None else min(plan.epochs, start + plan.stop_after)
    batches = iter(_loader(plan, header, images, range(start, end), workers, precision.device))
    evaluate_after = eval_epochs(plan.epochs, plan.evals)
    with progress(show if rank == 0 else False, log=book.record.log if rank == 0 else None) as bar:
        task = bar.add_task(f"train student {plan.output.name}", total=(end - start) * steps, info="")
        for epoch in range(start, end):
            temp = teacher_temperature(schedule, epoch, plan.epochs)
            temps.start_epoch(temp)

            def advance(info: str, epoch: int = epoch) -> None:
                bar.update(task, advance=1, info=f"epoch {epoch + 1} {info}")

            stats = train_epoch(
                student, batches, steps, header, plan, temp, temps, images.labels, advance, rank, world, basis
            )
            t0 = time.perf_counter()
            temps.refit(student.model, precision.forward(student.model), _share(world))
            seconds = stats.seconds + time.perf_counter() - t0
            metrics = EpochMetrics(
                epoch=epoch + 1,
                loss=stats.loss,
                agreement=stats.agreement,
                teacher_temp=temp,
                student_temp=temps.value,
                lr=student.sched.get_last_lr()[0],
                seconds=seconds,
                batches_per_second=steps / seconds,
            )
            book.epoch(metrics, student, epoch + 1 in evaluate_after, bar.note)
    result = book.finish(plan, header, end, book.scores(student, end))
    barrier(world)
    return result


# Several students, one per seed (lpq train --seeds N): OUT/seed-<s>/ is a complete run for each.

SUMMARY = "seeds.json"


class SeedsResult(BaseModel):
    output: Path
    seeds: list[int]
    top1_mean: float
    top1_sd: float = Field(description="sample standard deviation over seeds (0 for one seed)")
    top5_mean: float
    top5_sd: float
    label_bytes: int
    label_scheme: str
    runs: list[TrainResult]


def _sd(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def seed_folder(output: Path, seed: int) -> Path:
    return output / f"seed-{seed}"


def train_seeds(cfg: TrainConfig, show: bool | Show = False) -> SeedsResult:
    """``cfg.seeds`` students into OUT/seed-<s>/; mean and sd of their final-epoch accuracy."""
    out = cfg.output
    if not cfg.resume and out.exists() and any(p.name != LOCK for p in out.iterdir()):
        raise LpqError(
            "run-exists", f"{out} already holds runs", "pass --resume to continue them, or choose another -o"
        )
    runs = []
    for seed in range(cfg.seed, cfg.seed + cfg.seeds):
        folder = seed_folder(out, seed)
        run = cfg.model_copy(
            update={"seed": seed, "seeds": 1, "output": folder, "resume": cfg.resume and (folder / STATE).exists()}
        )
        runs.append(train(run, show=show))  # a finished run resumes to its result without training
    top1 = [r.top1 for r in runs]
    top5 = [r.top5 for r in runs]
    result = SeedsResult(
        output=out,
        seeds=[r.seed for r in runs],
        top1_mean=statistics.fmean(top1),
        top1_sd=_sd(top1),
        top5_mean=statistics.fmean(top5),
        top5_sd=_sd(top5),
        label_bytes=runs[0].label_bytes,
        label_scheme=runs[0].label_scheme,
        runs=runs,
    )
    write_model(out / SUMMARY, result)
    return result
