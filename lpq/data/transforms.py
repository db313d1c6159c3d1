"""An `InputSpec` (lpq.format.inputs: the side S, the resize rule, the normalization) applied to pixels.

The teacher file records its `InputSpec` and every later command takes it from there, so the teacher, the
synthesis, the real-image baseline and the student's evaluation all see images prepared the same way.
Transforms work on uint8 (3, H, W) tensors with antialiased resizing and return normalized float32.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from lpq.format.inputs import InputSpec

Transform = Callable[[torch.Tensor], torch.Tensor]
IMAGENET_MEAN = (0.485, 0.456, 0.406)  # torchvision's ImageNet weights
IMAGENET_STD = (0.229, 0.224, 0.225)


def normalize(spec: InputSpec, x: torch.Tensor) -> torch.Tensor:
    """uint8 or [0, 1] images (..., 3, H, W) to normalized float32."""
    if x.dtype == torch.uint8:
        x = x.float() / 255.0
    mean = torch.tensor(spec.mean, device=x.device, dtype=x.dtype).view(3, 1, 1)
    std = torch.tensor(spec.std, device=x.device, dtype=x.dtype).view(3, 1, 1)
    return (x - mean) / std


def fit(spec: InputSpec, x: torch.Tensor) -> torch.Tensor:
    """The deterministic (evaluation) geometry: uint8 (3, H, W) -> uint8 (3, S, S)."""
    import torchvision.transforms.v2.functional as TF

    s = spec.size
    if spec.resize == "none":
        if tuple(x.shape[-2:]) != (s, s):
            raise ValueError(f"image of {tuple(x.shape[-2:])} px where {s} x {s} was expected")
        return x
    mode = _mode(spec.interpolation)
    if spec.resize == "resize":
        return TF.resize(x, [s, s], interpolation=mode, antialias=True)
    x = TF.resize(x, int(s / spec.crop_fraction), interpolation=mode, antialias=True)
    return TF.center_crop(x, [s, s])


def eval_transform(spec: InputSpec) -> Transform:
    return lambda x: normalize(spec, fit(spec, x))


def train_transform(spec: InputSpec) -> Transform:
    """RandomResizedCrop(S) and a flip for large images; the fitted image and a flip otherwise."""
    import torchvision.transforms.v2 as T

    if spec.resize == "center-crop":
        geometry: Transform = T.Compose(
            [
                T.RandomResizedCrop(spec.size, interpolation=_mode(spec.interpolation), antialias=True),
                T.RandomHorizontalFlip(),
            ]
        )
    else:
        flip = T.RandomHorizontalFlip()
        geometry = lambda x: flip(fit(spec, x))  # noqa: E731 - a two-step closure
    return lambda x: normalize(spec, geometry(x))


def _mode(name: str):
    from torchvision.transforms import InterpolationMode

    return InterpolationMode(name)
