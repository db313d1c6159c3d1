"""Classifiers by name, for teachers and students.

``convnet`` is the dataset-distillation literature's ConvNet (3 x [conv 3x3, 128 channels, BatchNorm, ReLU,
2x2 average pooling], then a linear layer): fast enough to be the CPU default. torchvision's resnet18,
resnet50 and mobilenet_v2 get the small-image stem the authors use for inputs of 64 pixels or less (3x3
stride-1 first convolution, no max-pool). Weights come from a local file (safetensors, or a PyTorch file
read with ``weights_only=True``) or, for users online, by torchvision weight name (``torchvision:DEFAULT``).

    from lpq.models import build_model, MODELS
    net = build_model("resnet18", num_classes=10, image_size=32)
"""

from __future__ import annotations

from collections.abc import Callable
import pickle  # for its exception type only: nothing here unpickles
from pathlib import Path

import torch
from torch import nn

from lpq.errors import LpqError

ModelFactory = Callable[[int, int], nn.Module]
MODELS: dict[str, ModelFactory] = {}
SMALL_INPUT = 64  # pixels: at or below this, torchvision models get the 3x3 stride-1 stem


def register_model(name: str) -> Callable[[ModelFactory], ModelFactory]:
    def add(factory: ModelFactory) -> ModelFactory:
        MODELS[name] = factory
        return factory

    return add


class ConvNet(nn.Module):
    def __init__(self, num_classes: int, image_size: int, width: int = 128, depth: int = 3) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels, size = 3, image_size
        for _ in range(depth):
            layers += [nn.Conv2d(channels, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(inplace=True), nn.AvgPool2d(2)]
            channels, size = width, size // 2
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(width * size * size, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).flatten(1))


@register_model("convnet")
def convnet(num_classes: int, image_size: int) -> nn.Module:
    return ConvNet(num_classes, image_size)


def _torchvision(name: str) -> ModelFactory:
    def build(num_classes: int, image_size: int) -> nn.Module:
        import torchvision

        net = getattr(torchvision.models, name)(weights=None, num_classes=num_classes)
        if image_size <= SMALL_INPUT:
            if name.startswith("resnet"):
                net.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
                net.maxpool = nn.Identity()
            else:  # mobilenet_v2: the first ConvBNReLU's stride
                net.features[0][0].stride = (1, 1)
        return net

    return build


for _name in ("resnet18", "resnet50", "mobilenet_v2"):
    register_model(_name)(_torchvision(_name))


def build_model(name: str, num_classes: int, image_size: int) -> nn.Module:
    if name not in MODELS:
        raise LpqError("unknown-model", f"no model named {name!r}", f"choose one of {', '.join(sorted(MODELS))}")
    return MODELS[name](num_classes, image_size)


def load_weights(net: nn.Module, source: str) -> None:
    """Load a safetensors file, a weights_only PyTorch file, or ``torchvision:WEIGHTS`` into net (strict)."""
    if source.startswith("torchvision:"):
        raise LpqError("weights-online", "torchvision weights are ImageNet 1000-class weights and need a download",
                       "save them with torchvision once online, then pass the file")
    path = Path(source)
    if not path.is_file():
        raise LpqError("weights-not-found", f"weight file {path} does not exist")
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        if path.suffix == ".safetensors":
            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
            state = state.get("state_dict", state) if isinstance(state, dict) else state
    except (SafetensorError, RuntimeError, OSError, EOFError, ValueError, pickle.UnpicklingError) as e:
        # weights_only=True refuses anything but tensors and plain containers with UnpicklingError
        raise LpqError("weights-unreadable", f"cannot read weights from {path}: {str(e).splitlines()[0]}") from None
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as e:
        first = str(e).splitlines()[1].strip() if "\n" in str(e) else str(e)
        raise LpqError("weights-mismatch", f"{path} does not fit this model ({first})",
                       "check --model and the class count") from None


@torch.no_grad()
def evaluate(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, mean: tuple[float, ...],
             std: tuple[float, ...], device: torch.device, batch: int = 512) -> tuple[float, float]:
    """Top-1 and top-5 accuracy (%) of a classifier on uint8 images (N, 3, H, W) normalized by mean/std."""
    model.eval()
    m = torch.tensor(mean, device=device).view(1, 3, 1, 1)
    s = torch.tensor(std, device=device).view(1, 3, 1, 1)
    top1 = top5 = 0
    for i in range(0, len(labels), batch):
        x = (images[i : i + batch].to(device).float() / 255 - m) / s
        y = labels[i : i + batch].to(device)
        logits = model(x)
        pred = logits.topk(min(5, logits.shape[1]), dim=1).indices
        top1 += int((pred[:, 0] == y).sum())
        top5 += int((pred == y[:, None]).any(dim=1).sum())
    return 100.0 * top1 / len(labels), 100.0 * top5 / len(labels)


def bn_layers(net: nn.Module) -> dict[str, nn.modules.batchnorm._BatchNorm]:
    """Every BatchNorm layer by its module name, in forward-definition order."""
    return {n: m for n, m in net.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)}


def penultimate(net: nn.Module) -> nn.Linear:
    """The last linear layer: its input is the feature vector used for diversity measures."""
    linears = [m for m in net.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise LpqError("model-no-linear", "the model has no linear classifier layer")
    return linears[-1]
