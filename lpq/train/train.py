"""`lpq train`: a student on distilled images and `.lpql` labels, with Dynamic Knowledge Reuse and Calibrated
Alignment (METHOD.md section 2, stage 6), evaluated on a real test split.

Loss: KL(target || softmax(student / T_s)), batch mean, optionally times T^2. The target is rebuilt from the
stored labels at the teacher temperature of the epoch (DKR: step or cosine schedules over the same
logits). With ``calibrate`` the student temperature T_s is re-fitted after every epoch on a grid (0.01 to
1, 100 points) to the value minimizing that KL on a sample of stored batches (CA). Temperature defaults
come from the label file's calibration metadata, else from METHOD.md (start 20, x0.7 every 30 of 300
epochs, floor 2). The run folder holds config.json, metrics.jsonl, best/last weights (safetensors), a
resume state (read with ``weights_only=True``) and result.json.

    lpq train syn/ labels.lpql --model convnet --eval-data digits --epochs 100 -o run/
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel, Field
from torch import nn
from torch.utils.data import DataLoader

from lpq.data import load_split
from lpq.errors import LpqError
from lpq.format import Header, LpqlReader, ScheduleKind, TempSchedule
from lpq.labels.targets import dense_targets
from lpq.labels.temperature import teacher_temperature
from lpq.models import build_model, evaluate
from lpq.progress import progress
from lpq.runtime import barrier, init_distributed, pick_device
from lpq.train.batches import StoredBatches

STATE = "state.pt"
RUN_ONLY = {"resume", "stop_after", "workers", "device"}  # settings that may differ when resuming
CALIBRATION_BATCHES = 8  # stored batches the student temperature is fitted on after each epoch


class TrainConfig(BaseModel):
    images: str
    labels: Path
    output: Path = Path("run")
    model: str = "convnet"
    eval_data: str = "digits"
    eval_root: Path | None = None
    epochs: int = Field(300, ge=1)
    optimizer: Literal["adamw", "sgd"] = "adamw"
    lr: float | None = Field(None, gt=0, description="AdamW 1e-3 (ImageNet-1K), SGD 0.2 (Tiny-ImageNet)")
    weight_decay: float | None = Field(None, ge=0, description="AdamW 0.01, SGD 1e-4")
    momentum: float = 0.9
    warmup_epochs: int = Field(0, ge=0)
    temp_schedule: ScheduleKind | None = None
    temp_start: float | None = Field(None, gt=0)
    temp_floor: float | None = Field(None, gt=0)
    temp_factor: float | None = Field(None, gt=0, le=1)
    temp_every: int | None = Field(None, ge=1, description="step schedule period, in epochs of a 300-epoch run")
    calibrate: bool = True
    student_temp: float = Field(1.0, gt=0, description="T_s without --calibrate, and its starting value with it")
    t2_scaling: bool = False
    eval_every: int = Field(10, ge=1)
    seed: int = Field(0, ge=0)
    workers: int = Field(0, ge=0)
    device: str = "auto"
    resume: bool = False
    stop_after: int | None = Field(None, ge=1, description="stop after this many epochs in this session")

    def resolved(self, calibration_schedule: TempSchedule | None) -> TrainConfig:
        base = calibration_schedule or TempSchedule()
        sgd = self.optimizer == "sgd"
        return self.model_copy(update={
            "lr": self.lr if self.lr is not None else (0.2 if sgd else 1e-3),
            "weight_decay": self.weight_decay if self.weight_decay is not None else (1e-4 if sgd else 0.01),
            "temp_schedule": self.temp_schedule or base.kind,
            "temp_start": self.temp_start or base.start,
            "temp_floor": self.temp_floor or base.floor,
            "temp_factor": self.temp_factor or base.factor,
            "temp_every": self.temp_every or base.every,
        })

    def schedule(self) -> TempSchedule:
        return TempSchedule(kind=self.temp_schedule or "step", start=self.temp_start or 20.0, floor=self.temp_floor or 2.0,
                            factor=self.temp_factor or 0.7, every=self.temp_every or 30)

    def identity(self) -> dict[str, object]:
        return self.model_dump(mode="json", exclude=RUN_ONLY)


class EpochMetrics(BaseModel):
    epoch: int
    loss: float
    agreement: float = Field(description="% of samples where the student's top-1 is the target's")
    teacher_temp: float
    student_temp: float
    lr: float
    seconds: float
    batches_per_second: float
    top1: float | None = None
    top5: float | None = None


class TrainResult(BaseModel):
    output: Path
    epochs: int
    top1: float
    top5: float
    best_top1: float
    label_bytes: int
    label_scheme: str
    seconds: float


def _targets(header: Header, values: torch.Tensor, indices: torch.Tensor, temperature: float) -> torch.Tensor:
    return dense_targets(values, indices if indices.numel() else None, header.quant.scheme, header.num_classes, temperature)


def kd_loss(logits: torch.Tensor, target: torch.Tensor, student_temp: float) -> torch.Tensor:
    """KL(target || softmax(logits / T_s)), batch mean."""
    return F.kl_div(F.log_softmax(logits / student_temp, dim=1), target, reduction="batchmean")


@torch.no_grad()
def fit_student_temperature(logits: torch.Tensor, target: torch.Tensor, grid: torch.Tensor) -> float:
    """The grid temperature minimizing KL(target || softmax(logits / t))."""
    losses = torch.stack([kd_loss(logits, target, float(t)) for t in grid])
    return float(grid[int(losses.argmin())])


def _check_run_folder(cfg: TrainConfig, identity: dict[str, object]) -> None:
    saved = cfg.output / "config.json"
    if cfg.resume:
        if not (cfg.output / STATE).exists():
            raise LpqError("resume-nothing", f"{cfg.output} holds no run to resume", "drop --resume to start one")
        if json.loads(saved.read_text()) != identity:
            raise LpqError("resume-mismatch", f"{cfg.output} was trained with other settings",
                           "resume with the same settings, or choose another -o")
    elif cfg.output.exists() and any(cfg.output.iterdir()):
        raise LpqError("run-exists", f"{cfg.output} already holds a run",
                       "pass --resume to continue it, or choose another -o")


def _save_state(path: Path, state: dict) -> None:
    tmp = path.with_name(path.name + ".partial")
    torch.save(state, tmp)
    os.replace(tmp, path)


def _save_weights(path: Path, model: nn.Module) -> None:
    from safetensors.torch import save_file

    tmp = path.with_name(path.name + ".partial")
    save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, str(tmp))
    os.replace(tmp, path)


def train(cfg: TrainConfig, show: bool = False) -> TrainResult:
    rank, world = init_distributed()
    with LpqlReader(cfg.labels) as r:
        header, calibration = r.header, r.calibration
    label_bytes = cfg.labels.stat().st_size
    cfg = cfg.resolved(calibration.teacher_schedule if calibration else None)
    identity = cfg.identity()
    if rank == 0:
        _check_run_folder(cfg, identity)
    images = load_split(cfg.images, "train")
    if images.fingerprint() != header.images.fingerprint:
        raise LpqError("fingerprint-mismatch", f"{cfg.labels} was made for other images than {cfg.images}",
                       "pass the image set the labels were relabelled from")
    evalset = load_split(cfg.eval_data, "test", cfg.eval_root)
    if evalset.classes != header.class_names:
        raise LpqError("class-mismatch", f"--eval-data {cfg.eval_data} has other classes than the labels")
    if evalset.image_size != header.augment.input_size:
        raise LpqError("eval-size-mismatch", f"--eval-data images are {evalset.image_size} px, the labels' inputs "
                       f"{header.augment.input_size} px", "evaluate on data of the resolution the teacher was trained on")
    device = pick_device(cfg.device, rank)
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.model, header.num_classes, header.augment.input_size).to(device)
    net: nn.Module = model
    if world > 1:
        net = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    steps_per_epoch = math.ceil(header.relabel.batches_per_epoch / world)
    total = cfg.epochs * steps_per_epoch
    warm = cfg.warmup_epochs * steps_per_epoch
    if cfg.optimizer == "adamw":
        opt: torch.optim.Optimizer = torch.optim.AdamW(model.parameters(), cfg.lr, weight_decay=cfg.weight_decay or 0.0)
    else:
        opt = torch.optim.SGD(model.parameters(), cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay or 0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / warm if s < warm else 0.5 * (1 + math.cos(math.pi * (s - warm) / max(1, total - warm))))
    start, student_temp, best = 0, cfg.student_temp, -1.0
    if cfg.resume:
        state = torch.load(cfg.output / STATE, map_location="cpu", weights_only=True)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        start, student_temp, best = int(state["epoch"]), float(state["student_temp"]), float(state["best_top1"])
    if rank == 0:
        cfg.output.mkdir(parents=True, exist_ok=True)
        (cfg.output / "config.json").write_text(json.dumps(identity, indent=2))
        _trim_metrics(cfg.output / "metrics.jsonl", start)
    end = cfg.epochs if cfg.stop_after is None else min(cfg.epochs, start + cfg.stop_after)
    data = StoredBatches(cfg.labels, images.images, cfg.seed, range(start, end), rank, world)
    loader = DataLoader(data, batch_size=None, shuffle=False, num_workers=cfg.workers,
                        persistent_workers=False, prefetch_factor=4 if cfg.workers else None)
    norm_mean, norm_std = tuple(data.mean.flatten().tolist()), tuple(data.std.flatten().tolist())
    grid = torch.linspace(0.01, 1.0, 100)
    schedule = cfg.schedule()
    t_start = time.perf_counter()
    top1 = top5 = None
    with progress(show and rank == 0) as bar:
        task = bar.add_task("train student", total=(end - start) * steps_per_epoch, info="")
        it = iter(loader)
        for epoch in range(start, end):
            temp = teacher_temperature(schedule, epoch, cfg.epochs)
            net.train()
            t0 = time.perf_counter()
            loss_sum = agree = seen = 0.0
            calib_logits, calib_targets = [], []
            for _ in range(steps_per_epoch):
                x, values, indices, _ = next(it)
                target = _targets(header, values, indices, temp).to(device)
                logits = net(x.to(device))
                loss = kd_loss(logits, target, student_temp) * (temp * temp if cfg.t2_scaling else 1.0)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                n = len(target)
                loss_sum += loss.item() * n
                agree += float((logits.argmax(1) == target.argmax(1)).sum())
                seen += n
                if cfg.calibrate and len(calib_logits) < CALIBRATION_BATCHES:
                    calib_logits.append(x)
                    calib_targets.append(target)
                bar.update(task, advance=1, info=f"epoch {epoch + 1} loss {loss_sum / seen:.4f} T {temp:.2f} Ts {student_temp:.2f}")
            if cfg.calibrate:
                student_temp = _calibrate(model, calib_logits, calib_targets, grid, device, rank, world)
            seconds = time.perf_counter() - t0
            metrics = EpochMetrics(epoch=epoch + 1, loss=loss_sum / seen, agreement=100 * agree / seen, teacher_temp=temp,
                                   student_temp=student_temp, lr=sched.get_last_lr()[0], seconds=seconds,
                                   batches_per_second=steps_per_epoch / seconds)
            if rank == 0:
                if (epoch + 1) % cfg.eval_every == 0 or epoch + 1 == cfg.epochs:
                    top1, top5 = evaluate(model, evalset.images, evalset.labels, norm_mean, norm_std, device)
                    metrics = metrics.model_copy(update={"top1": top1, "top5": top5})
                    if top1 > best:
                        best = top1
                        _save_weights(cfg.output / "best.safetensors", model)
                with open(cfg.output / "metrics.jsonl", "a") as f:
                    f.write(metrics.model_dump_json() + "\n")
                _save_weights(cfg.output / "last.safetensors", model)
                _save_state(cfg.output / STATE, {"model": model.state_dict(), "optimizer": opt.state_dict(),
                                                  "scheduler": sched.state_dict(), "epoch": epoch + 1,
                                                  "student_temp": student_temp, "best_top1": best})
    if top1 is None or top5 is None:
        top1, top5 = evaluate(model, evalset.images, evalset.labels, norm_mean, norm_std, device)
    result = TrainResult(output=cfg.output, epochs=end, top1=top1, top5=top5, best_top1=max(best, top1),
                         label_bytes=label_bytes, label_scheme=f"{header.quant.scheme} k={header.quant.k} "
                         f"{header.quant.values.id} x{header.prune.ratio:g}", seconds=time.perf_counter() - t_start)
    if rank == 0:
        (cfg.output / "result.json").write_text(result.model_dump_json(indent=2))
    barrier(world)
    return result


def _calibrate(model: nn.Module, inputs: list[torch.Tensor], targets: list[torch.Tensor], grid: torch.Tensor,
               device: torch.device, rank: int, world: int) -> float:
    """Calibrated Alignment: refit T_s on this epoch's first stored batches (rank 0), shared with all ranks."""
    was_training = model.training
    model.eval()
    with torch.no_grad():
        logits = torch.cat([model(x.to(device)) for x in inputs])
    model.train(was_training)
    value = torch.tensor([fit_student_temperature(logits.cpu(), torch.cat(targets).cpu(), grid)])
    if world > 1:
        import torch.distributed as dist

        dist.broadcast(value, src=0)
    return float(value[0])


def _trim_metrics(path: Path, start: int) -> None:
    """On resume, drop metric lines of epochs after the checkpoint (they will be redone)."""
    if not path.exists():
        return
    keep = [line for line in path.read_text().splitlines() if line and json.loads(line)["epoch"] <= start]
    path.write_text("".join(line + "\n" for line in keep))

