"""`lpq squeeze`: train (or load) a teacher, measure it, and record per-class BatchNorm statistics.

The statistics pass runs the teacher in eval mode over the real training split once; forward pre-hooks on
ordinary BatchNorm layers add each sample's per-channel sum and sum of squares into its class's
accumulators (float64), so for any architecture with BatchNorm the recorded class-c mean and variance are
exactly those of that layer's input over class c's images (variance biased, as BatchNorm normalizes).

    lpq squeeze --data digits --model convnet --epochs 30 -o teacher.lpqt
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel, Field
from torch import nn

from lpq.data import ImageSet, load_split
from lpq.errors import LpqError
from lpq.models import bn_layers, build_model, evaluate, load_weights
from lpq.progress import progress
from lpq.runtime import pick_device
from lpq.squeeze.teacher import ClassStats, Teacher, TeacherMeta, save_teacher, weights_sha256


class SqueezeConfig(BaseModel):
    data: str = "digits"
    root: Path | None = None
    download: bool = False
    model: str = "convnet"
    weights: str | None = None
    epochs: int = Field(30, ge=0)
    batch_size: int = Field(128, ge=1)
    optimizer: Literal["sgd", "adamw"] = "sgd"
    lr: float = Field(0.05, gt=0, description="SGD default; AdamW takes about 1e-3")
    weight_decay: float = Field(5e-4, ge=0)
    seed: int = 0
    device: str = "auto"
    output: Path = Path("teacher.lpqt")


class SqueezeResult(BaseModel):
    output: Path
    architecture: str
    classes: int
    train_images: int
    test_top1: float
    test_top5: float
    train_seconds: float
    stats_seconds: float
    bn_layers: int


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


def fit(model: nn.Module, train: ImageSet, cfg: SqueezeConfig, device: torch.device, show: bool) -> None:
    """Supervised training with crop/flip augmentation and cosine learning-rate decay."""
    gen = torch.Generator().manual_seed(cfg.seed)
    steps_per_epoch = math.ceil(len(train) / cfg.batch_size)
    if cfg.optimizer == "sgd":
        opt: torch.optim.Optimizer = torch.optim.SGD(model.parameters(), cfg.lr, momentum=0.9, nesterov=True, weight_decay=cfg.weight_decay)
    else:
        opt = torch.optim.AdamW(model.parameters(), cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, cfg.lr, total_steps=cfg.epochs * steps_per_epoch, pct_start=0.15)
    mean = torch.tensor(train.mean, device=device).view(1, 3, 1, 1)
    std = torch.tensor(train.std, device=device).view(1, 3, 1, 1)
    with progress(show) as bar:
        task = bar.add_task("train teacher", total=cfg.epochs * steps_per_epoch, info="")
        for epoch in range(cfg.epochs):
            model.train()
            order = torch.randperm(len(train), generator=gen)
            seen = correct = 0
            loss_sum = 0.0
            for i in range(steps_per_epoch):
                idx = order[i * cfg.batch_size : (i + 1) * cfg.batch_size]
                x = augment_batch(train.images[idx], gen).to(device).float() / 255
                y = train.labels[idx].to(device)
                logits = model((x - mean) / std)
                loss = F.cross_entropy(logits, y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                seen += len(idx)
                correct += int((logits.argmax(1) == y).sum())
                loss_sum += loss.item() * len(idx)
                bar.update(task, advance=1, info=f"epoch {epoch + 1} loss {loss_sum / seen:.3f} acc {100 * correct / seen:.1f}%")


class ClassStatsRecorder:
    """Forward pre-hooks that add each BatchNorm input into per-class float64 sums while attached."""

    def __init__(self, model: nn.Module, num_classes: int) -> None:
        self.layers = bn_layers(model)
        if not self.layers:
            raise LpqError("model-no-batchnorm", "the model has no BatchNorm layers: class statistics are impossible",
                           "choose a model with BatchNorm (convnet, resnet18, mobilenet_v2, ...)")
        self.num_classes = num_classes
        self.labels: torch.Tensor | None = None
        self.sums: dict[str, list[torch.Tensor]] = {}
        self._handles = [m.register_forward_pre_hook(self._hook(n)) for n, m in self.layers.items()]

    def _hook(self, name: str):  # noqa: ANN202 - a hook closure
        def hook(_module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
            x = inputs[0]
            dims = tuple(range(2, x.dim()))
            positions = math.prod(x.shape[2:]) if x.dim() > 2 else 1
            s1 = (x.sum(dim=dims) if dims else x).double()  # (B, C)
            s2 = ((x * x).sum(dim=dims) if dims else x * x).double()
            if name not in self.sums:
                shape = (self.num_classes, x.shape[1])
                self.sums[name] = [torch.zeros(shape, dtype=torch.float64, device=x.device) for _ in range(2)]
                self.sums[name].append(torch.zeros(self.num_classes, dtype=torch.float64, device=x.device))
            acc = self.sums[name]
            if self.labels is None:
                raise RuntimeError("ClassStatsRecorder.labels must be set before each forward pass")
            acc[0].index_add_(0, self.labels, s1)
            acc[1].index_add_(0, self.labels, s2)
            acc[2].index_add_(0, self.labels, torch.full_like(self.labels, positions, dtype=torch.float64))

        return hook

    def result(self) -> dict[str, ClassStats]:
        out = {}
        for name, (s1, s2, n) in self.sums.items():
            mean = s1 / n[:, None]
            out[name] = ClassStats(mean.cpu(), (s2 / n[:, None] - mean * mean).clamp(min=0).cpu(), n.cpu())
        return out

    def close(self) -> None:
        for h in self._handles:
            h.remove()


@torch.no_grad()
def record_class_stats(model: nn.Module, data: ImageSet, mean: tuple, std: tuple, device: torch.device,
                       batch: int = 256, show: bool = False) -> dict[str, ClassStats]:
    model.eval()
    rec = ClassStatsRecorder(model, data.num_classes)
    m = torch.tensor(mean, device=device).view(1, 3, 1, 1)
    s = torch.tensor(std, device=device).view(1, 3, 1, 1)
    try:
        with progress(show) as bar:
            task = bar.add_task("class BN statistics", total=len(data), info="")
            for i in range(0, len(data), batch):
                rec.labels = data.labels[i : i + batch].to(device)
                model((data.images[i : i + batch].to(device).float() / 255 - m) / s)
                bar.update(task, advance=len(rec.labels))
    finally:
        rec.close()
    return rec.result()


def squeeze(cfg: SqueezeConfig, show: bool = False) -> SqueezeResult:
    device = pick_device(cfg.device)
    torch.manual_seed(cfg.seed)
    train = load_split(cfg.data, "train", cfg.root, cfg.download)
    test = load_split(cfg.data, "test", cfg.root, cfg.download)
    if test.classes != train.classes:
        raise LpqError("data-class-mismatch", "the test split's classes differ from the training split's")
    empty = [c for c, n in zip(train.classes, torch.bincount(train.labels, minlength=train.num_classes).tolist()) if n == 0]
    if empty:
        raise LpqError("data-empty-class", f"training split has no images of class {empty[0]}")
    model = build_model(cfg.model, train.num_classes, train.image_size)
    if not bn_layers(model):
        raise LpqError("model-no-batchnorm", f"{cfg.model} has no BatchNorm layers: class statistics are impossible")
    if cfg.weights:
        load_weights(model, cfg.weights)
    elif cfg.epochs == 0:
        raise LpqError("squeeze-no-teacher", "--epochs 0 without --weights leaves an untrained teacher")
    model.to(device)
    t0 = time.perf_counter()
    if not cfg.weights:
        fit(model, train, cfg, device, show)
    train_s = time.perf_counter() - t0
    top1, top5 = evaluate(model, test.images, test.labels, train.mean, train.std, device)
    t0 = time.perf_counter()
    stats = record_class_stats(model, train, train.mean, train.std, device, show=show)
    stats_s = time.perf_counter() - t0
    model.cpu().eval()
    meta = TeacherMeta(
        architecture=cfg.model,
        num_classes=train.num_classes,
        class_names=train.classes,
        image_size=train.image_size,
        mean=train.mean,
        std=train.std,
        data=cfg.data,
        data_fingerprint=train.fingerprint(),
        test_top1=top1,
        test_top5=top5,
        bn_layers=list(stats),
        weights_sha256=weights_sha256(model),
        training={"epochs": 0 if cfg.weights else cfg.epochs, "optimizer": cfg.optimizer, "lr": cfg.lr,
                  "batch_size": cfg.batch_size, "seed": cfg.seed, "weights": cfg.weights or ""},
    )
    save_teacher(cfg.output, Teacher(meta, model, stats))
    return SqueezeResult(output=cfg.output, architecture=cfg.model, classes=train.num_classes, train_images=len(train),
                         test_top1=top1, test_top5=top5, train_seconds=train_s, stats_seconds=stats_s, bn_layers=len(stats))
