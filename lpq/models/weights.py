"""Where a model's weights come from, by prefix (a registry: a new source is a new entry).

    --weights FILE                                safetensors, or a PyTorch file read with weights_only=True
    --weights torchvision:DEFAULT                 the --model's default torchvision weights (or IMAGENET1K_V1, ...)
    --weights torchvision:resnet18.IMAGENET1K_V1  the same, naming the architecture (then --model may be left out)
    --weights timm:resnet18.a1_in1k               a timm pretrained tag (timm:NAME for its default; timm:DEFAULT
                                                  with --model timm:NAME)

Pretrained weights load through the library's own weights API, from the local cache when the file is there
($TORCH_HOME/hub/checkpoints/ for torchvision, the Hugging Face cache for timm) and downloading only when
online. Offline with nothing cached, the error names the file looked for and where to put it. Pretrained
weights also bring their input preparation (crop size, resize, interpolation, normalization) and class
count; ImageNet weights expect the classes in sorted-wnid order, which an ImageNet folder gives.

A safetensors file may say how its images were prepared and which architecture it is for, in its metadata
(``lpq.input``: the `PretrainedInput` fields as JSON; ``lpq.architecture``: a model name), as a converted
checkpoint from elsewhere needs to (benchmarks/lite0.py writes EfficientNet-Lite0's TF-style 0.5/0.5
normalization there). Weights whose tensor names differ from the model's are refused naming the first ones
that differ; a head of other rows can be restricted to the data's classes (`lpq.models.classes`).
"""

from __future__ import annotations

import contextlib
import io
import json
import pickle  # for its exception type only: nothing here unpickles
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from torch import nn

from lpq.errors import LpqError
from lpq.models.classes import ClassMap

INPUT_KEY, ARCH_KEY = "lpq.input", "lpq.architecture"  # a safetensors file's metadata about its weights


class PretrainedInput(BaseModel):
    """How the pretrained weights' images were prepared: the evaluation crop, its resize, normalization."""

    model_config = ConfigDict(frozen=True)

    crop_size: int = Field(ge=1)
    resize_size: int = Field(ge=1)
    interpolation: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


@dataclass(frozen=True)
class Weights:
    state: dict[str, torch.Tensor]
    source: str
    architecture: str | None = None  # the architecture the weights belong to, when the source names one
    input: PretrainedInput | None = None


def _split_tag(rest: str, model: str | None) -> tuple[str, str]:
    """'resnet18.IMAGENET1K_V1' or 'IMAGENET1K_V1' (with --model) -> (architecture, tag)."""
    arch, dot, tag = rest.rpartition(".")
    if not dot:
        arch, tag = model or "", rest
    if not arch:
        raise LpqError(
            "weights-no-model",
            f"--weights torchvision:{rest} names no architecture",
            f"pass --model, or name it: torchvision:resnet18.{rest}",
        )
    return arch, tag


def _torchvision(rest: str, model: str | None) -> Weights:
    from torchvision.models import get_model_weights

    arch, tag = _split_tag(rest, model)
    try:
        enum = get_model_weights(arch)
    except (ValueError, KeyError):
        raise LpqError("weights-unknown", f"torchvision has no pretrained weights for {arch!r}") from None
    if tag not in enum.__members__:
        raise LpqError(
            "weights-unknown",
            f"torchvision has no weights {arch}.{tag}",
            f"choose one of {', '.join(enum.__members__)}",
        )
    w = enum[tag]
    file = Path(torch.hub.get_dir()) / "checkpoints" / Path(w.url).name
    if file.exists():
        state = _torch_file(file)
    else:
        try:  # torch.hub announces "Downloading: ..." before it knows whether it can: offline, our line is the only one
            with contextlib.redirect_stderr(io.StringIO()):
                state = torch.hub.load_state_dict_from_url(
                    w.url, map_location="cpu", progress=False, check_hash=True, weights_only=True
                )
        except (OSError, RuntimeError) as e:  # offline (URLError is an OSError) or a corrupt download
            raise LpqError(
                "weights-not-cached",
                f"torchvision weights {arch}.{w.name} are not in {file} and could "
                f"not be downloaded ({str(e).splitlines()[0]})",
                f"put {Path(w.url).name} (from {w.url}) into {file.parent}, or run once online",
            ) from None
    t = w.transforms()
    spec = PretrainedInput(
        crop_size=int(t.crop_size[0]),
        resize_size=int(t.resize_size[0]),
        interpolation=t.interpolation.value,
        mean=tuple(t.mean),  # type: ignore[arg-type]
        std=tuple(t.std),  # type: ignore[arg-type]
    )
    return Weights(state, f"torchvision:{arch}.{w.name}", arch, spec)


def _timm(rest: str, model: str | None) -> Weights:
    from lpq.models import import_timm

    timm = import_timm()
    name = rest if rest != "DEFAULT" else (model or "").removeprefix("timm:")
    if not name:
        raise LpqError(
            "weights-no-model",
            "--weights timm:DEFAULT names no architecture",
            "pass --model timm:NAME, or name the weights: timm:resnet18.a1_in1k",
        )
    cfg = timm.models.get_pretrained_cfg(name)
    if cfg is None or not cfg.hf_hub_id:
        raise LpqError("weights-unknown", f"timm has no pretrained weights {name!r} on the Hugging Face hub")
    from huggingface_hub import hf_hub_download

    try:
        path = hf_hub_download(cfg.hf_hub_id, "model.safetensors")
    except (OSError, ValueError) as e:  # the hub's not-found errors are OSErrors and ValueErrors
        raise LpqError(
            "weights-not-cached",
            f"timm weights {name} ({cfg.hf_hub_id}) are not in the Hugging Face cache "
            f"and could not be downloaded ({str(e).splitlines()[0]})",
            "run once online, or copy the models--timm--... folder into $HF_HOME/hub",
        ) from None
    from safetensors.torch import load_file

    size = int(cfg.input_size[-1])
    spec = PretrainedInput(
        crop_size=size,
        resize_size=round(size / cfg.crop_pct),
        interpolation=cfg.interpolation,
        mean=tuple(cfg.mean),  # type: ignore[arg-type]
        std=tuple(cfg.std),  # type: ignore[arg-type]
    )
    return Weights(load_file(path), f"timm:{name}", f"timm:{cfg.architecture}", spec)


def _torch_file(path: Path) -> dict[str, torch.Tensor]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, OSError, EOFError, ValueError, pickle.UnpicklingError) as e:
        # weights_only=True refuses anything but tensors and plain containers with UnpicklingError
        raise LpqError("weights-unreadable", f"cannot read weights from {path}: {str(e).splitlines()[0]}") from None
    return state.get("state_dict", state) if isinstance(state, dict) else state


def read_safetensors(path: Path, code: str) -> tuple[dict[str, str], dict[str, torch.Tensor]]:
    """The metadata and tensors of a safetensors file, a failure as one ``code`` line. safetensors reports every
    failure to open as "No such file or directory" (a file without read permission too): the file is opened here
    first, so the line says what the system said."""
    from safetensors import SafetensorError, safe_open

    try:
        with open(path, "rb"):
            pass
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open has no iterator)
    except OSError as e:
        raise LpqError(code, f"cannot read {path}: {e.strerror or e}") from None
    except SafetensorError as e:
        raise LpqError(code, f"{path} is not a safetensors file ({str(e).splitlines()[0]})") from None
    return meta, tensors


def _file(spec: str) -> Weights:
    path = Path(spec)
    if not path.is_file():
        raise LpqError("weights-not-found", f"weight file {path} does not exist")
    if path.suffix not in (".safetensors", ".lpqt"):
        return Weights(_torch_file(path), str(path))
    meta, state = read_safetensors(path, "weights-unreadable")
    if path.suffix == ".safetensors":
        try:
            preset = PretrainedInput.model_validate_json(meta[INPUT_KEY]) if INPUT_KEY in meta else None
        except ValidationError as e:
            raise LpqError(
                "weights-unreadable", f"{path}: bad {INPUT_KEY} metadata ({str(e).splitlines()[0]})"
            ) from None
        return Weights(state, str(path), meta.get(ARCH_KEY), preset)
    # A teacher file (lpq squeeze): its model's tensors, and the architecture its metadata names.
    try:
        arch = json.loads(meta["lpqt"])["architecture"]
    except (KeyError, ValueError, TypeError):
        raise LpqError("weights-unreadable", f"{path} is not an lpq teacher file") from None
    return Weights({k.removeprefix("model."): v for k, v in state.items() if k.startswith("model.")}, str(path), arch)


SOURCES: dict[str, Callable[[str, str | None], Weights]] = {"torchvision": _torchvision, "timm": _timm}


def read_weights(spec: str, model: str | None = None) -> Weights:
    """The weights a ``--weights`` value names; ``model`` completes a tag that names no architecture."""
    prefix, colon, rest = spec.partition(":")
    if colon and prefix in SOURCES:
        return SOURCES[prefix](rest, model)
    return _file(spec)


def _head(net: nn.Module) -> tuple[str, nn.Linear]:
    """The classifier: the model's last linear layer, and its name."""
    return next((n, m) for n, m in reversed(list(net.named_modules())) if isinstance(m, nn.Linear))


def head_classes(net: nn.Module, state: dict[str, torch.Tensor]) -> tuple[int, int | None]:
    """(classes the model predicts, classes the weights' classifier predicts): its last linear layer's rows."""
    name, head = _head(net)
    w = state.get(f"{name}.weight")
    return head.out_features, None if w is None else int(w.shape[0])


def restrict_head(net: nn.Module, state: dict[str, torch.Tensor], classes: ClassMap) -> dict[str, torch.Tensor]:
    """``state`` with its classifier (the model's last linear layer) cut to the rows ``classes`` keeps."""
    name, _ = _head(net)
    head = {k: state[k] for k in (f"{name}.weight", f"{name}.bias") if k in state}
    if not head:
        raise LpqError("weights-mismatch", f"the weights have no tensor {name}.weight for the model's classifier")
    if any(t.shape[0] != classes.source_classes for t in head.values()):
        raise LpqError(
            "weights-class-count",
            f"the weights predict {next(iter(head.values())).shape[0]} classes, not the "
            f"{classes.source_classes} of {classes.source}",
        )
    rows = torch.tensor(classes.rows)
    return {**state, **{k: t.index_select(0, rows) for k, t in head.items()}}


def _names_differ(net: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """One line naming the first tensors a model expects and the weights lack, and the reverse."""
    ours, theirs = list(net.state_dict()), list(state)
    missing = [k for k in ours if k not in state]
    unexpected = [k for k in theirs if k not in set(ours)]
    if not missing and not unexpected:
        return
    said = []
    for verb, keys, what in (("expects", missing, "missing"), ("has", unexpected, "unknown")):
        if keys:
            said.append(f"{verb} {', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''} ({len(keys)} {what})")
    raise LpqError(
        "weights-keys",
        f"{source} names its tensors differently from the model, which {'; the file '.join(said)}",
        "convert the file to the architecture's tensor names (see benchmarks/lite0.py), or check --model",
    )


def load_into(net: nn.Module, weights: Weights, classes: ClassMap | None = None) -> None:
    """Strict load, with an error that says which tensor does not fit (names first, then the class count); with
    ``classes`` only those rows of the weights' classifier are loaded, in that order."""
    state = weights.state
    _names_differ(net, state, weights.source)
    if classes is not None:
        state = restrict_head(net, state, classes)
    ours, theirs = head_classes(net, state)
    if theirs is not None and theirs != ours:
        raise LpqError(
            "weights-class-count",
            f"{weights.source} predicts {theirs} classes, the data has {ours}",
            "use data with the classes the weights were trained on (ImageNet weights: 1,000, in sorted-wnid order)"
            + (", or keep the rows of the data's wnids: --teacher-classes imagenet1k" if theirs == 1000 else ""),
        )
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as e:
        first = str(e).splitlines()[1].strip() if "\n" in str(e) else str(e)
        raise LpqError(
            "weights-mismatch",
            f"{weights.source} does not fit this model ({first})",
            "check --model and the class count",
        ) from None
