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
from torch import nn

from lpq.errors import LpqError


@dataclass(frozen=True)
class PretrainedInput:
    """How the pretrained weights' images were prepared: the evaluation crop, its resize, normalization."""

    crop_size: int
    resize_size: int
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
        int(t.crop_size[0]), int(t.resize_size[0]), t.interpolation.value, tuple(t.mean), tuple(t.std)
    )  # type: ignore[arg-type]
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
        size,
        round(size / cfg.crop_pct),
        cfg.interpolation,
        tuple(cfg.mean),  # type: ignore[arg-type]
        tuple(cfg.std),
    )  # type: ignore[arg-type]
    return Weights(load_file(path), f"timm:{name}", f"timm:{cfg.architecture}", spec)


def _torch_file(path: Path) -> dict[str, torch.Tensor]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, OSError, EOFError, ValueError, pickle.UnpicklingError) as e:
        # weights_only=True refuses anything but tensors and plain containers with UnpicklingError
        raise LpqError("weights-unreadable", f"cannot read weights from {path}: {str(e).splitlines()[0]}") from None
    return state.get("state_dict", state) if isinstance(state, dict) else state


def _file(spec: str) -> Weights:
    path = Path(spec)
    if not path.is_file():
        raise LpqError("weights-not-found", f"weight file {path} does not exist")
    if path.suffix not in (".safetensors", ".lpqt"):
        return Weights(_torch_file(path), str(path))
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            state = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open has no iterator)
    except (SafetensorError, OSError) as e:
        raise LpqError("weights-unreadable", f"cannot read weights from {path}: {str(e).splitlines()[0]}") from None
    if path.suffix == ".safetensors":
        return Weights(state, str(path))
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


def head_classes(net: nn.Module, state: dict[str, torch.Tensor]) -> tuple[int, int | None]:
    """(classes the model predicts, classes the weights' classifier predicts): its last linear layer's rows."""
    name, head = next((n, m) for n, m in reversed(list(net.named_modules())) if isinstance(m, nn.Linear))
    w = state.get(f"{name}.weight")
    return head.out_features, None if w is None else int(w.shape[0])


def load_into(net: nn.Module, weights: Weights) -> None:
    """Strict load, with an error that says which tensor does not fit (the class count first)."""
    ours, theirs = head_classes(net, weights.state)
    if theirs is not None and theirs != ours:
        raise LpqError(
            "weights-class-count",
            f"{weights.source} predicts {theirs} classes, the data has {ours}",
            "use data with the classes the weights were trained on (ImageNet weights: 1,000, in sorted-wnid order)",
        )
    try:
        net.load_state_dict(weights.state, strict=True)
    except RuntimeError as e:
        first = str(e).splitlines()[1].strip() if "\n" in str(e) else str(e)
        raise LpqError(
            "weights-mismatch",
            f"{weights.source} does not fit this model ({first})",
            "check --model and the class count",
        ) from None
