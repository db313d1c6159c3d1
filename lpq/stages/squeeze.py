"""`lpq squeeze`: train (or load) a teacher, measure it, and record per-class BatchNorm statistics.

The statistics pass runs the teacher in eval mode over the real training split once; forward pre-hooks on
ordinary BatchNorm layers add each sample's per-channel sum and sum of squares into its class's
accumulators (float64), so for any architecture with BatchNorm the recorded class-c mean and variance are
exactly those of that layer's input over class c's images (variance biased, as BatchNorm normalizes).
Small in-memory sets pass as they are; streamed large images pass through the training transform
(RandomResizedCrop + flip), as the authors' forward pass over ImageNet does.

Inputs: small sets keep their native size (or ``--image-size``, resized), large streamed images take
torchvision's reference recipe at S = ``--image-size`` (224 by default), and pretrained weights bring their
own preset. The teacher file records S, the resize rule and the normalization.

The run's record lies beside the output (lpq.artifacts.run): ``NAME.config.json`` (the settings),
``NAME.metrics.jsonl`` / ``.csv`` (loss, train top-1 and learning rate per epoch) and ``NAME.log.txt``. Training
checkpoints after every epoch (``NAME.state.pt``: weights, optimizer, schedule, random state; read with
``weights_only=True``), so ``--resume`` continues an interrupted run and ends with the same teacher an
uninterrupted one writes; the checkpoint is removed once the teacher file is written.

    lpq squeeze --data digits --model convnet --epochs 30 -o teacher.lpqt
    lpq squeeze --data /data/imagenet --weights torchvision:resnet18.IMAGENET1K_V1 --epochs 0 -o teacher.lpqt
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from lpq.artifacts.checkpoint import TrainingState
from lpq.artifacts.run import RunRecord, rank0
from lpq.artifacts.teacher import Teacher, TeacherMeta, pretrained_input, save_teacher
from lpq.configs.squeeze import EPOCHS, SqueezeConfig
from lpq.data import ImageSet, ImageSource, InputSpec, batches, default_workers, open_split, recorded
from lpq.data.loader import sample_stats, share, subset
from lpq.data.transforms import normalize
from lpq.errors import LpqError
from lpq.method.bn import record_class_stats
from lpq.models import build_model, check_model_name, evaluate_counts, require_bn
from lpq.models.classes import head_rows
from lpq.models.weights import Weights, load_into, read_weights
from lpq.progress import Show, progress
from lpq.runtime import Precision, all_sum, barrier, init_distributed, pick_device, rank_range

LARGE_SIZE = 224  # S for streamed (large) images when --image-size is not given: torchvision's reference


def record_of(cfg: SqueezeConfig) -> RunRecord:
    """The run's record, beside the teacher file it writes."""
    return RunRecord.beside(cfg.output, "teacher training")


class TeacherEpoch(BaseModel):
    """One epoch of teacher training, as NAME.metrics.jsonl records it."""

    model_config = ConfigDict(ser_json_inf_nan="strings")  # a diverged loss is recorded as "NaN" and read back

    epoch: int
    loss: float
    train_top1: float
    lr: float = Field(description="learning rate at the epoch's end")
    seconds: float


class SqueezeResult(BaseModel):
    output: Path
    architecture: str
    classes: int
    train_images: int
    image_size: int
    resize: str
    test_top1: float
    test_top5: float
    train_seconds: float
    stats_seconds: float
    stats_images: int = Field(description="training images the class statistics were taken over")
    stats_images_per_second: float
    bn_layers: int
    bad_images_skipped: int


def augment_batch(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Standard small-image augmentation on a uint8 batch: random crop with padding size/8, then flip."""
    b, _, h, w = x.shape
    pad = max(1, h // 8)
    padded = F.pad(x, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (b,), generator=gen)
    dx = torch.randint(0, 2 * pad + 1, (b,), generator=gen)
    out = torch.stack([padded[i, :, y : y + h, x : x + w] for i, (y, x) in enumerate(zip(dy.tolist(), dx.tolist()))])
    flip = torch.rand(b, generator=gen) < 0.5
    out[flip] = out[flip].flip(-1)
    return out


EpochBatches = Callable[[int], Iterable[tuple[torch.Tensor, torch.Tensor]]]


def training_batches(
    train: ImageSource, spec: InputSpec, cfg: SqueezeConfig, workers: int, gen: torch.Generator
) -> EpochBatches:
    """Epoch -> its augmented, normalized batches: batched crop + flip in memory (drawn from ``gen``, whose
    state the checkpoints keep), the training transform when streamed (seeded by the epoch)."""
    if isinstance(train, ImageSet) and spec.resize == "none":

        def in_memory(_epoch: int) -> Iterable[tuple[torch.Tensor, torch.Tensor]]:
            order = torch.randperm(len(train), generator=gen)
            for i in range(0, len(train), cfg.batch_size):
                idx = order[i : i + cfg.batch_size]
                yield normalize(spec, augment_batch(train.images[idx], gen)), train.labels[idx]

        return in_memory
    return lambda epoch: batches(
        train,
        spec,
        train=True,
        batch_size=cfg.batch_size,
        workers=workers,
        shuffle=True,
        seed=cfg.seed * 1000 + epoch,
        skip_bad=cfg.skip_bad_images,
    )


def checkpoint_path(output: Path) -> Path:
    return output.with_name(output.name + ".state.pt")


@dataclass
class Trainer(TrainingState):
    """The teacher's training state, plus the random state batches are drawn from."""

    gen: torch.Generator

    def save_epoch(self, path: Path, epochs_done: int) -> None:
        self.save(path, epochs_done=epochs_done, generator=self.gen.get_state(), torch_rng=torch.get_rng_state())

    def resume(self, path: Path) -> int:
        """Restores the checkpoint (its settings are the record's, checked when the run opened it); returns the
        epochs it had done."""
        state = self.load(path, "squeeze")
        self.gen.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        return int(state["epochs_done"])


def fit(
    model: nn.Module,
    epoch_batches: EpochBatches,
    steps_per_epoch: int,
    cfg: SqueezeConfig,
    epochs: int,
    precision: Precision,
    gen: torch.Generator,
    show: bool | Show,
) -> None:
    """Supervised training with one-cycle cosine learning-rate decay, checkpointed after every epoch."""
    if cfg.optimizer == "sgd":
        opt: torch.optim.Optimizer = torch.optim.SGD(
            model.parameters(), cfg.lr, momentum=0.9, nesterov=True, weight_decay=cfg.weight_decay
        )
    else:
        opt = torch.optim.AdamW(model.parameters(), cfg.lr, weight_decay=cfg.weight_decay)
    # OneCycleLR divides by its phase lengths: one step in all would make every learning rate NaN.
    total = max(2, epochs * steps_per_epoch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, cfg.lr, total_steps=total, pct_start=0.15)
    trainer = Trainer(model, opt, sched, precision.scaler(), gen)
    scaler, state, record = trainer.scaler, checkpoint_path(cfg.output), record_of(cfg)
    record = record.with_board(cfg.tensorboard, cfg.wandb, cfg.identity())  # training runs in one process
    board = record.board
    start = trainer.resume(state) if cfg.resume and state.exists() else 0  # the record refused it without --resume
    record.start(cfg.identity())
    record.write_rows([m for m in record.rows(TeacherEpoch) if m.epoch <= start])
    with progress(show, log=record.log) as bar:
        task = bar.add_task("train teacher", total=epochs * steps_per_epoch, completed=start * steps_per_epoch, info="")
        for epoch in range(start, epochs):
            model.train()
            t0 = time.perf_counter()
            seen = correct = 0
            loss_sum = 0.0
            for x, y in epoch_batches(epoch):
                y = y.to(precision.device, non_blocking=True)
                with precision.autocast():
                    logits = model(precision.inputs(x))
                loss = F.cross_entropy(logits.float(), y)
                opt.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()
                sched.step()
                seen += len(y)
                correct += int((logits.argmax(1) == y).sum())
                loss_sum += loss.item() * len(y)
                bar.update(
                    task,
                    advance=1,
                    info=f"epoch {epoch + 1} loss {loss_sum / seen:.3f} acc {100 * correct / seen:.1f}%",
                )
            row = TeacherEpoch(
                epoch=epoch + 1,
                loss=loss_sum / seen,
                train_top1=100 * correct / seen,
                lr=sched.get_last_lr()[0],
                seconds=time.perf_counter() - t0,
            )
            record.append(row)  # before the checkpoint: a resumed run drops rows past its checkpoint
            trainer.save_epoch(state, epoch + 1)
            bar.note(f"epoch {row.epoch}/{epochs}: loss {row.loss:.4f}, train top-1 {row.train_top1:.2f}%")
    if board is not None:
        board.close()


def input_spec(cfg: SqueezeConfig, train: ImageSource, weights: Weights | None, workers: int) -> InputSpec:
    """How images become the teacher's input (see the module docstring)."""
    if weights is not None and weights.input is not None:
        return pretrained_input(weights)
    if isinstance(train, ImageSet):
        same = cfg.image_size in (None, train.image_size)
        return InputSpec(
            size=train.image_size if same else cfg.image_size,
            resize="none" if same else "resize",
            mean=train.mean,
            std=train.std,
        )
    size = cfg.image_size or LARGE_SIZE
    mean, std = sample_stats(train, size, workers=workers, seed=cfg.seed)
    return InputSpec(size=size, resize="center-crop", mean=mean, std=std)


def _resolve(cfg: SqueezeConfig) -> tuple[str, int, Weights | None]:
    """Architecture, epochs and weights, checked before any data is read."""
    weights = read_weights(cfg.weights, cfg.model) if cfg.weights else None
    named = weights.architecture if weights else None
    if cfg.model and named and cfg.model != named:
        raise LpqError("weights-mismatch", f"--weights {cfg.weights} are for {named}, not --model {cfg.model}")
    arch = cfg.model or named or "convnet"
    check_model_name(arch)
    if cfg.teacher_classes and weights is None:
        raise LpqError(
            "teacher-classes-no-weights",
            f"--teacher-classes {cfg.teacher_classes} keeps rows of pretrained weights, and none were given",
            "pass --weights",
        )
    epochs = cfg.epochs if cfg.epochs is not None else (0 if weights else EPOCHS)
    if epochs == 0 and weights is None:
        raise LpqError(
            "squeeze-no-teacher",
            "--epochs 0 without --weights leaves an untrained teacher",
            "pass --weights, or train with --epochs N",
        )
    return arch, epochs, weights


def squeeze(cfg: SqueezeConfig, show: bool | Show = False) -> SqueezeResult:
    """Train (or load) the teacher, evaluate it, record its class statistics and write the teacher file. Its run
    record beside the output is locked while it works."""
    record = record_of(cfg)
    with record.lock() if rank0() else contextlib.nullcontext():
        if rank0():
            record.check(cfg.identity(), cfg.resume)
        return _squeeze(cfg, show)


def _squeeze(cfg: SqueezeConfig, show: bool | Show) -> SqueezeResult:
    arch, epochs, weights = _resolve(cfg)
    rank, world = init_distributed()
    if world > 1 and epochs:
        raise LpqError(
            "squeeze-distributed-training",
            "under torchrun, lpq squeeze shares the statistics pass and the evaluation of a trained teacher",
            "train it in one process first, then run torchrun ... lpq squeeze --weights TEACHER.lpqt --epochs 0",
        )
    precision = Precision.choose(cfg.amp, pick_device(cfg.device, rank))
    workers = default_workers() if cfg.workers is None else cfg.workers
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    train, test = _splits(cfg)
    spec = input_spec(cfg, train, weights, workers)
    train_spec = spec  # how training-split batches are made: an in-memory set resized once is then native
    if isinstance(train, ImageSet) and spec.resize == "resize":
        train, train_spec = resized(train, spec), spec.model_copy(update={"resize": "none"})
    class_map = head_rows(cfg.teacher_classes, train.classes) if cfg.teacher_classes else None
    model = build_model(arch, len(train.classes), spec.size)
    require_bn(model, arch)
    if weights is not None:
        load_into(model, weights, class_map)
    precision.model(model)
    t0 = time.perf_counter()
    if epochs:
        steps = -(-len(train) // cfg.batch_size)
        data = training_batches(train, train_spec, cfg, workers, gen)
        fit(model, data, steps, cfg, epochs, precision, gen, show)
    train_s = time.perf_counter() - t0
    loading = {"workers": workers, "skip_bad": cfg.skip_bad_images, "pin_memory": precision.device.type == "cuda"}
    evaluation = batches(share(test, rank_range(len(test), rank, world)), spec, batch_size=256, **loading)
    top1, top5 = _accuracy(model, evaluation, precision, world)
    t0 = time.perf_counter()
    sample = stats_sample(train, cfg.stats_per_class, cfg.seed)
    mine = share(sample, rank_range(len(sample), rank, world))  # each rank's share; class sums add over ranks
    train_mode = not isinstance(train, ImageSet)
    stats_data = batches(mine, train_spec, train_mode, batch_size=256, seed=cfg.seed, **loading)
    shown = show if rank == 0 else False
    stats = record_class_stats(model, stats_data, len(train.classes), precision, len(mine), shown, world)
    stats_s = time.perf_counter() - t0
    model.to("cpu", memory_format=torch.contiguous_format).eval()
    training = {"epochs": epochs, "optimizer": cfg.optimizer, "lr": cfg.lr, "batch_size": cfg.batch_size}
    training |= {"seed": cfg.seed, "weights": weights.source if weights else ""}
    meta = TeacherMeta.of(
        arch,
        train.classes,
        spec,
        model,
        data=recorded(cfg.data),  # later stages read it from anywhere (train's default evaluation data)
        data_fingerprint=train.fingerprint(),
        test_top1=top1,
        test_top5=top5,
        bn_layers=list(stats),
        training=training,
        class_map=class_map,
    )
    if rank == 0:
        save_teacher(cfg.output, Teacher(meta, model, stats))
        checkpoint_path(cfg.output).unlink(missing_ok=True)
    barrier(world)
    skipped = {*getattr(train, "skipped", []), *getattr(test, "skipped", []), *evaluation.skipped, *stats_data.skipped}
    return SqueezeResult(
        output=cfg.output,
        architecture=arch,
        classes=len(train.classes),
        train_images=len(train),
        image_size=spec.size,
        resize=spec.resize,
        test_top1=top1,
        test_top5=top5,
        train_seconds=train_s,
        stats_seconds=stats_s,
        stats_images=len(sample),
        stats_images_per_second=len(sample) / stats_s,
        bn_layers=len(stats),
        bad_images_skipped=len(skipped),
    )


def stats_sample(train: ImageSource, per_class: int | None, seed: int) -> ImageSource:
    """The training images the class statistics are taken over: all, or ``per_class`` seeded random images of each
    class (all of a class that has fewer), in the split's order, so ranks' contiguous shares still read their own
    files."""
    if per_class is None:
        return train
    labels = train.labels.numpy()
    chosen = []
    for c in range(len(train.classes)):
        pool = np.flatnonzero(labels == c)
        rng = np.random.default_rng([seed, c])
        chosen.append(pool if len(pool) <= per_class else rng.choice(pool, size=per_class, replace=False))
    return subset(train, np.sort(np.concatenate(chosen)).tolist())


def _splits(cfg: SqueezeConfig) -> tuple[ImageSource, ImageSource]:
    """The training and test splits, with the same classes, every class with training images."""
    train = open_split(cfg.data, "train", cfg.root, cfg.download, cfg.skip_bad_images)
    test = open_split(cfg.data, "test", cfg.root, cfg.download, cfg.skip_bad_images)
    if test.classes != train.classes:
        raise LpqError("data-class-mismatch", "the test split's classes differ from the training split's")
    counts = torch.bincount(train.labels, minlength=len(train.classes)).tolist()
    if 0 in counts:
        raise LpqError("data-empty-class", f"training split has no images of class {train.classes[counts.index(0)]}")
    return train, test


def _accuracy(
    model: nn.Module, evaluation: Iterable[tuple[torch.Tensor, torch.Tensor]], precision: Precision, world: int
) -> tuple[float, float]:
    """Top-1 and top-5 (%) over the test batches of every rank."""
    with precision.autocast():
        counts = evaluate_counts(model, evaluation, precision.device)
    correct1, correct5, seen = all_sum(torch.tensor(counts, dtype=torch.int64), world).tolist()
    if not seen:
        raise LpqError("data-empty", "no images to evaluate on")
    return 100.0 * correct1 / seen, 100.0 * correct5 / seen


def resized(data: ImageSet, spec: InputSpec) -> ImageSet:
    """An in-memory set prepared once by the spec's geometry (the 'resize' rule), as evaluation prepares it."""
    images = torch.stack([fit(spec, x) for x in data.images])
    return ImageSet(data.name, images, data.labels, data.classes, data.mean, data.std, data.skipped)
