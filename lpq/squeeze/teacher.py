"""The `.lpqt` teacher file: a safetensors file (no pickle) holding weights, class statistics and metadata.

Tensors: ``model.<name>`` (the state dict), ``stats.<bn layer>.mean`` and ``.var`` (classes, channels)
float64 per-class statistics of each BatchNorm layer's input, ``stats.<bn layer>.count`` (classes,)
float64 positions counted. Metadata key ``lpqt`` holds the `TeacherMeta` JSON.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from pydantic import BaseModel, ValidationError
from torch import nn

from lpq.errors import LpqError
from lpq.models import build_model

FORMAT = "lpqt/1"


class TeacherMeta(BaseModel):
    format: str = FORMAT
    architecture: str
    num_classes: int
    class_names: list[str]
    image_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    data: str
    data_fingerprint: str
    test_top1: float | None
    test_top5: float | None
    bn_layers: list[str]
    weights_sha256: str
    training: dict[str, float | int | str] = {}


@dataclass
class ClassStats:
    """Per-class mean and (biased) variance of one BatchNorm layer's input: (classes, channels) each."""

    mean: torch.Tensor
    var: torch.Tensor
    count: torch.Tensor


@dataclass
class Teacher:
    meta: TeacherMeta
    model: nn.Module
    stats: dict[str, ClassStats]

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """[0, 1] images to the teacher's normalized input."""
        mean = torch.tensor(self.meta.mean, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
        std = torch.tensor(self.meta.std, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
        return (x - mean) / std


def weights_sha256(model: nn.Module) -> str:
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def save_teacher(path: Path, teacher: Teacher) -> Path:
    """Write atomically: a temporary name, then rename."""
    from safetensors.torch import save_file

    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in teacher.model.state_dict().items()}
    for name, s in teacher.stats.items():
        tensors[f"stats.{name}.mean"] = s.mean.contiguous()
        tensors[f"stats.{name}.var"] = s.var.contiguous()
        tensors[f"stats.{name}.count"] = s.count.contiguous()
    tmp = path.with_name(path.name + ".partial")
    save_file(tensors, str(tmp), metadata={"lpqt": teacher.meta.model_dump_json()})
    os.replace(tmp, path)
    return path


def load_teacher(path: Path, need_stats: bool = True) -> Teacher:
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise LpqError("teacher-not-found", f"teacher file {path} does not exist", "make one with lpq squeeze")
    try:
        with safe_open(str(path), framework="pt") as f:
            raw = (f.metadata() or {}).get("lpqt")
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError) as e:
        raise LpqError("teacher-unreadable", f"{path} is not a teacher file ({e})") from None
    if raw is None:
        raise LpqError("teacher-unreadable", f"{path} is a safetensors file without lpq teacher metadata")
    try:
        meta = TeacherMeta.model_validate(json.loads(raw))
    except (ValidationError, json.JSONDecodeError) as e:
        raise LpqError("teacher-unreadable", f"{path}: bad teacher metadata ({str(e).splitlines()[0]})") from None
    model = build_model(meta.architecture, meta.num_classes, meta.image_size)
    state = {k.removeprefix("model."): v for k, v in tensors.items() if k.startswith("model.")}
    model.load_state_dict(state, strict=True)
    model.eval()
    stats = {}
    for name in meta.bn_layers:
        keys = [f"stats.{name}.{part}" for part in ("mean", "var", "count")]
        if all(k in tensors for k in keys):
            stats[name] = ClassStats(*(tensors[k] for k in keys))
    if need_stats and len(stats) != len(meta.bn_layers):
        raise LpqError("teacher-no-stats", f"{path} has no per-class BatchNorm statistics",
                       "rerun lpq squeeze to record them")
    return Teacher(meta, model, stats)
