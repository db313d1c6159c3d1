"""Teachers: the `.lpqt` file `lpq squeeze` writes, or pretrained weights used directly (relabel needs no stats).

The `.lpqt` file is a safetensors file (no pickle): tensors ``model.<name>`` (the state dict),
``stats.<bn layer>.mean`` and ``.var`` (classes, channels) float64 per-class statistics of each BatchNorm
layer's input, ``stats.<bn layer>.count`` (classes,) float64 positions counted; metadata key ``lpqt``
holds the `TeacherMeta` JSON, including how images are prepared for it (size, resize rule, normalization),
which every later command takes from it, and, for a teacher restricted to the data's classes, which rows of
the pretrained head it kept (``class_map``; its model holds only those rows, so every stage agrees).

A teacher is named by a path to a `.lpqt` file, or by pretrained weights (``torchvision:resnet18.IMAGENET1K_V1``,
``timm:resnet18.a1_in1k``) whose classes are then those of the images it labels.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from pydantic import BaseModel, Field, ValidationError
from torch import nn

from lpq.choices import TeacherClasses
from lpq.data import InputSpec
from lpq.data.transforms import normalize
from lpq.errors import LpqError
from lpq.files import atomic
from lpq.format.inputs import ResizeRule
from lpq.models import bn_layers, build_model
from lpq.models.classes import ClassMap, head_rows
from lpq.models.weights import SOURCES, Weights, load_into, read_safetensors, read_weights

FORMAT = "lpqt/1"


class TeacherMeta(BaseModel):
    format: str = FORMAT
    architecture: str
    num_classes: int
    class_names: list[str]
    image_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    resize: ResizeRule = "none"
    crop_fraction: float = 0.875
    interpolation: str = "bilinear"
    data: str
    data_fingerprint: str
    test_top1: float | None
    test_top5: float | None
    bn_layers: list[str]
    weights_sha256: str
    training: dict[str, float | int | str] = {}
    class_map: ClassMap | None = Field(
        None, description="the rows of a pretrained head this teacher kept, one per class (lpq.models.classes)"
    )

    @classmethod
    def of(cls, architecture: str, classes: list[str], spec: InputSpec, model: nn.Module, **provenance) -> TeacherMeta:
        """A model's metadata: what it is, the classes and input it reads; ``provenance`` says where it came from
        (data, test scores, BN layers with statistics, training)."""
        return cls(
            architecture=architecture,
            num_classes=len(classes),
            class_names=classes,
            image_size=spec.size,
            mean=spec.mean,
            std=spec.std,
            resize=spec.resize,
            crop_fraction=spec.crop_fraction,
            interpolation=spec.interpolation,
            weights_sha256=weights_sha256(model),
            **provenance,
        )

    def input_spec(self) -> InputSpec:
        return InputSpec(
            size=self.image_size,
            resize=self.resize,
            crop_fraction=self.crop_fraction,
            interpolation=self.interpolation,
            mean=self.mean,
            std=self.std,
        )  # type: ignore[arg-type]


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
        """uint8 or [0, 1] images to the teacher's normalized input."""
        return normalize(self.meta.input_spec(), x)


def weights_sha256(model: nn.Module) -> str:
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def save_teacher(path: Path, teacher: Teacher) -> Path:
    """Write atomically: a temporary name, then rename."""
    from safetensors.torch import save_file

    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in teacher.model.state_dict().items()}
    for name, s in teacher.stats.items():
        tensors[f"stats.{name}.mean"] = s.mean.contiguous()
        tensors[f"stats.{name}.var"] = s.var.contiguous()
        tensors[f"stats.{name}.count"] = s.count.contiguous()
    with atomic(path) as tmp:
        save_file(tensors, str(tmp), metadata={"lpqt": teacher.meta.model_dump_json()})
    return path


def is_pretrained(spec: str | Path) -> bool:
    prefix, colon, _ = str(spec).partition(":")
    return bool(colon) and prefix in SOURCES


def load_teacher(
    spec: str | Path,
    need_stats: bool = True,
    classes: list[str] | None = None,
    teacher_classes: TeacherClasses | None = None,
) -> Teacher:
    """A teacher from a `.lpqt` file, or from pretrained weights (their classes are then ``classes``; with
    ``teacher_classes`` the weights' head is cut to the rows of those classes)."""
    if is_pretrained(spec):
        return pretrained_teacher(read_weights(str(spec)), classes, need_stats, teacher_classes)
    path = Path(spec)
    if path.is_dir():
        raise LpqError(
            "teacher-not-found", f"{path} is a folder, not a teacher file", "pass the .lpqt lpq squeeze wrote"
        )
    if not path.is_file():
        raise LpqError("teacher-not-found", f"teacher file {path} does not exist", "make one with lpq squeeze")
    meta_text, tensors = read_safetensors(path, "teacher-unreadable")
    raw = meta_text.get("lpqt")
    if raw is None:
        raise LpqError("teacher-unreadable", f"{path} is a safetensors file without lpq teacher metadata")
    try:
        meta = TeacherMeta.model_validate(json.loads(raw))
    except (ValidationError, json.JSONDecodeError) as e:
        raise LpqError("teacher-unreadable", f"{path}: bad teacher metadata ({str(e).splitlines()[0]})") from None
    state = {k.removeprefix("model."): v for k, v in tensors.items() if k.startswith("model.")}
    skeleton = _checked_skeleton(path, meta, state)
    stats = {}
    bns = bn_layers(skeleton)
    for name in meta.bn_layers:
        keys = [f"stats.{name}.{part}" for part in ("mean", "var", "count")]
        if all(k in tensors for k in keys):
            stats[name] = ClassStats(*(tensors[k] for k in keys))
            _check_stats(path, name, stats[name], meta.num_classes, bns)
    model = build_model(meta.architecture, meta.num_classes, meta.image_size)  # sizes checked: now allocate
    model.load_state_dict(state, strict=True)
    model.eval()
    if need_stats and len(stats) != len(meta.bn_layers):
        raise LpqError(
            "teacher-no-stats", f"{path} has no per-class BatchNorm statistics", "rerun lpq squeeze to record them"
        )
    return Teacher(meta, model, stats)


MAX_IMAGE_SIZE = 8192  # pixels: a teacher's input side above this is a corrupt number, not a model


def _corrupt(path: Path, what: str) -> LpqError:
    return LpqError("teacher-corrupt", f"{path}: {what}", "make the teacher file again with lpq squeeze")


def _checked_skeleton(path: Path, meta: TeacherMeta, state: dict[str, torch.Tensor]) -> nn.Module:
    """The model the metadata describes, built on the meta device (no memory), after its numbers and every stored
    tensor's shape are checked against it: a crafted file is refused before anything is allocated."""
    if len(meta.class_names) != meta.num_classes:
        raise _corrupt(path, f"it names {len(meta.class_names)} classes but says it has {meta.num_classes}")
    if not 1 <= meta.image_size <= MAX_IMAGE_SIZE:
        raise _corrupt(path, f"its input size {meta.image_size} px is outside 1..{MAX_IMAGE_SIZE}")
    if not any(t.dim() and t.shape[0] == meta.num_classes for t in state.values()):
        raise _corrupt(path, f"no stored tensor has the {meta.num_classes} rows of its classifier")
    with torch.device("meta"):
        skeleton = build_model(meta.architecture, meta.num_classes, meta.image_size)
    expected = {k: tuple(v.shape) for k, v in skeleton.state_dict().items()}
    for key in [*expected, *state]:
        want, got = expected.get(key), tuple(state[key].shape) if key in state else None
        if want != got:
            told = f"holds {key} of shape {got}" if got is not None else f"lacks {key}"
            raise _corrupt(path, f"it {told} where {meta.architecture} has {want or 'no such tensor'}")
    return skeleton


def _check_stats(path: Path, name: str, stats: ClassStats, classes: int, bns: dict[str, nn.Module]) -> None:
    """Class statistics of a BatchNorm layer the model has, shaped (classes, its channels) and (classes,)."""
    if name not in bns:
        raise _corrupt(path, f"it has statistics of {name}, which is no BatchNorm layer of the model")
    shape = (classes, bns[name].num_features)
    if tuple(stats.mean.shape) != shape or tuple(stats.var.shape) != shape or tuple(stats.count.shape) != (classes,):
        raise _corrupt(path, f"the statistics of {name} are shaped {tuple(stats.mean.shape)}, not {shape}")


def pretrained_input(weights: Weights) -> InputSpec:
    """The input preparation pretrained weights were made with (torchvision's or timm's own presets)."""
    if weights.input is None:
        raise LpqError("weights-no-preset", f"{weights.source} says nothing about its input size and normalization")
    p = weights.input
    return InputSpec(
        size=p.crop_size,
        resize="center-crop",
        crop_fraction=p.crop_size / p.resize_size,
        interpolation=p.interpolation if p.interpolation in ("bilinear", "bicubic") else "bilinear",
        mean=p.mean,
        std=p.std,
    )


def pretrained_teacher(
    weights: Weights, classes: list[str] | None, need_stats: bool, teacher_classes: TeacherClasses | None = None
) -> Teacher:
    """Pretrained weights as a teacher without class statistics (enough for relabel, not for synth)."""
    if need_stats:
        raise LpqError(
            "teacher-no-stats",
            f"{weights.source} has no per-class BatchNorm statistics",
            f"record them once: lpq squeeze --weights {weights.source} --epochs 0 --data ... -o teacher.lpqt",
        )
    if classes is None:
        raise LpqError("teacher-no-classes", f"{weights.source} as a teacher needs the images' class names")
    spec = pretrained_input(weights)
    arch = weights.architecture or ""
    model = build_model(arch, len(classes), spec.size)
    class_map = head_rows(teacher_classes, classes) if teacher_classes else None
    load_into(model, weights, class_map)
    model.eval()
    return _unmeasured(arch, classes, spec, model, training={"weights": weights.source}, class_map=class_map)


def _unmeasured(architecture: str, classes: list[str], spec: InputSpec, model: nn.Module, **provenance) -> Teacher:
    """A teacher used as it is: no data it was measured on, no test scores, no class statistics."""
    meta = TeacherMeta.of(
        architecture,
        classes,
        spec,
        model,
        data="",
        data_fingerprint="",
        test_top1=None,
        test_top5=None,
        bn_layers=list(bn_layers(model)),
        **provenance,
    )
    return Teacher(meta, model, {})


@torch.no_grad()
def module_teacher(model: nn.Module, classes: list[str], spec: InputSpec, name: str | None = None) -> Teacher:
    """A model of your own as a teacher (no class statistics: enough for relabel): ``classes`` are the names of
    its output rows, in order, and ``spec`` how its inputs are prepared (size, normalization). Its logits are
    checked on one blank input, so a head of another width is refused before any labelling."""
    model.eval()
    probe = next(model.parameters(), torch.empty(0))
    out = model(torch.zeros(1, 3, spec.size, spec.size, device=probe.device, dtype=probe.dtype))
    if out.dim() != 2 or out.shape[1] != len(classes):
        raise LpqError(
            "teacher-class-count",
            f"the teacher outputs {tuple(out.shape)} for one image, not (1, {len(classes)}) for the images' classes",
        )
    return _unmeasured(name or f"module:{type(model).__name__}", classes, spec, model)
