"""Classifiers by name, for teachers and students, and where their weights come from.

Names: ``convnet`` (the dataset-distillation literature's ConvNet: 3 x [conv 3x3, 128 channels, BatchNorm,
ReLU, 2x2 average pooling], then a linear layer; fast enough to be the CPU default), every classification
model torchvision lists (``resnet18``, ``resnet50``, ``mobilenet_v2``, ``efficientnet_b0``, ...), and
``timm:NAME`` for timm's models (the optional extra ``lpq[timm]``). ResNet-style and MobileNet models get
the small-image stem the authors use for inputs of 64 pixels or less (3x3 stride-1 first convolution, no
max-pool). Weights: see `lpq.models.weights`.

    from lpq.models import build_model
    net = build_model("resnet18", num_classes=10, image_size=32)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import nn

from lpq.choices import SMALL_INPUT
from lpq.errors import LpqError

ModelFactory = Callable[[int, int], nn.Module]
MODELS: dict[str, ModelFactory] = {}  # lpq's own models; torchvision's and timm's are found by name


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
            layers += [
                nn.Conv2d(channels, width, 3, padding=1),
                nn.BatchNorm2d(width),
                nn.ReLU(inplace=True),
                nn.AvgPool2d(2),
            ]
            channels, size = width, size // 2
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(width * size * size, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).flatten(1))


@register_model("convnet")
def convnet(num_classes: int, image_size: int) -> nn.Module:
    return ConvNet(num_classes, image_size)


def torchvision_models() -> list[str]:
    """Every classification model torchvision lists (not detection, segmentation, video or quantized)."""
    import torchvision

    return sorted(torchvision.models.list_models(module=torchvision.models))


def available_models() -> list[str]:
    return sorted(MODELS) + torchvision_models()


def small_stem(net: nn.Module) -> nn.Module:
    """The authors' stem for small inputs: a 3x3 stride-1 first convolution and no max-pool."""
    if isinstance(getattr(net, "conv1", None), nn.Conv2d) and hasattr(net, "maxpool"):  # ResNet, ResNeXt, Wide ResNet
        net.conv1 = nn.Conv2d(3, net.conv1.out_channels, 3, 1, 1, bias=False)
        net.maxpool = nn.Identity()
    elif isinstance(getattr(net, "features", None), nn.Sequential):  # MobileNet v2/v3: the first conv's stride
        first = next(m for m in net.features.modules() if isinstance(m, nn.Conv2d))
        first.stride = (1, 1)
    return net


def check_model_name(name: str) -> None:
    """Refuse an unknown architecture before any heavy work (building resnet152 just to check is slow)."""
    if name in MODELS or (name.startswith("timm:") and import_timm().is_model(name.removeprefix("timm:"))):
        return
    if not name.startswith("timm:") and name in torchvision_models():
        return
    raise LpqError(
        "unknown-model",
        f"no model named {name!r}",
        "choose convnet, a torchvision classification model (resnet18, mobilenet_v2, ...) or timm:NAME",
    )


def build_model(name: str, num_classes: int, image_size: int) -> nn.Module:
    """A freshly initialized classifier for ``num_classes`` classes and square inputs of ``image_size``."""
    check_model_name(name)
    if name in MODELS:
        return MODELS[name](num_classes, image_size)
    if name.startswith("timm:"):
        net = import_timm().create_model(name.removeprefix("timm:"), pretrained=False, num_classes=num_classes)
    else:
        import torchvision

        net = torchvision.models.get_model(name, weights=None, num_classes=num_classes)
    return small_stem(net) if image_size <= SMALL_INPUT else net


def import_timm():
    try:
        import timm
    except ImportError:
        raise LpqError("timm-missing", "timm models need the timm package", "pip install 'lpq[timm]'") from None
    return timm


@torch.no_grad()
def evaluate(
    model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]], device: torch.device
) -> tuple[float, float]:
    """Top-1 and top-5 accuracy (%) of a classifier over (normalized inputs, labels) batches."""
    top1, top5, seen = evaluate_counts(model, batches, device)
    if seen == 0:
        raise LpqError("data-empty", "no images to evaluate on")
    return 100.0 * top1 / seen, 100.0 * top5 / seen


@torch.no_grad()
def evaluate_counts(
    model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]], device: torch.device
) -> tuple[int, int, int]:
    """(top-1 correct, top-5 correct, images): counts, which ranks that evaluated shares of a split can add."""
    model.eval()
    top1 = top5 = seen = 0
    for x, y in batches:
        logits = model(x.to(device, non_blocking=True))
        y = y.to(device, non_blocking=True)
        pred = logits.topk(min(5, logits.shape[1]), dim=1).indices
        top1 += int((pred[:, 0] == y).sum())
        top5 += int((pred == y[:, None]).any(dim=1).sum())
        seen += len(y)
    return top1, top5, seen


def bn_layers(net: nn.Module) -> dict[str, nn.modules.batchnorm._BatchNorm]:
    """Every BatchNorm layer by its module name, in forward-definition order."""
    return {n: m for n, m in net.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)}


def require_bn(net: nn.Module, name: str = "the model") -> dict[str, nn.modules.batchnorm._BatchNorm]:
    """`bn_layers`, refusing a model without any: class statistics and BN matching need them."""
    layers = bn_layers(net)
    if not layers:
        raise LpqError(
            "model-no-batchnorm",
            f"{name} has no BatchNorm layers: class statistics are impossible",
            "choose a model with BatchNorm (convnet, resnet18, mobilenet_v2, ...)",
        )
    return layers


def penultimate(net: nn.Module) -> nn.Linear:
    """The last linear layer: its input is the feature vector used for diversity measures."""
    linears = [m for m in net.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise LpqError("model-no-linear", "the model has no linear classifier layer")
    return linears[-1]


@torch.no_grad()
def penultimate_features(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """(B, D) inputs of ``net``'s last linear layer for the batch ``x`` (moved to the model's device)."""
    feats: list[torch.Tensor] = []
    handle = penultimate(net).register_forward_pre_hook(lambda _m, i: feats.append(i[0].flatten(1)))
    try:
        net(x.to(next(net.parameters()).device))
    finally:
        handle.remove()
    return feats[0]
