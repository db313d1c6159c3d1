"""How images become a model's input: the size S, the resize rule, the normalization (one record, `InputSpec`).

The teacher file records its `InputSpec` and every later command takes it from there, so the teacher, the
synthesis, the real-image baseline and the student's evaluation all see images prepared the same way.

Resize rules (torchvision's reference recipe for large images, native size for small ones):

- ``none``: images are used at their own size, which must be S (CIFAR, Tiny-ImageNet, synthetic sets).
- ``resize``: every image is resized to S x S (a small set trained at another size).
- ``center-crop``: evaluation resizes the shorter side to S / crop_fraction (256 for S = 224 at 0.875)
  and takes the central S x S crop; training takes RandomResizedCrop(S, scale 0.08-1) and a flip.

Transforms work on uint8 (3, H, W) tensors with antialiased resizing and return normalized float32.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field

ResizeRule = Literal["none", "resize", "center-crop"]
Transform = Callable[[torch.Tensor], torch.Tensor]
CROP_FRACTION = 0.875  # torchvision's reference evaluation: Resize(256) + CenterCrop(224)
IMAGENET_MEAN = (0.485, 0.456, 0.406)  # torchvision's ImageNet weights
IMAGENET_STD = (0.229, 0.224, 0.225)


class InputSpec(BaseModel):
    """How images become a model's input: side S, the resize rule, the normalization (module docstring).

    spec = InputSpec(size=32, mean=(0.49, 0.48, 0.45), std=(0.25, 0.24, 0.26))   # native 32 px images
    x = spec.eval_transform()(uint8_image)                                        # (3, 32, 32) float32
    """

    model_config = ConfigDict(frozen=True)

    size: int = Field(ge=1, description="side S of the square input, pixels")
    resize: ResizeRule = "none"
    crop_fraction: float = Field(CROP_FRACTION, gt=0, le=1, description="center-crop: S / resized shorter side")
    interpolation: Literal["bilinear", "bicubic"] = "bilinear"
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def at_size(self, size: int) -> InputSpec:
        """The same preparation at side ``size``: a center crop of the same fraction, or the whole image resized
        (images used at their own size are then resized to ``size``). A student at another resolution than its
        teacher is evaluated on real images prepared this way."""
        if size == self.size:
            return self
        return self.model_copy(update={"size": size, "resize": "resize" if self.resize == "none" else self.resize})

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 or [0, 1] images (..., 3, H, W) to normalized float32."""
        if x.dtype == torch.uint8:
            x = x.float() / 255.0
        mean = torch.tensor(self.mean, device=x.device, dtype=x.dtype).view(3, 1, 1)
        std = torch.tensor(self.std, device=x.device, dtype=x.dtype).view(3, 1, 1)
        return (x - mean) / std

    def fit(self, x: torch.Tensor) -> torch.Tensor:
        """The deterministic (evaluation) geometry: uint8 (3, H, W) -> uint8 (3, S, S)."""
        import torchvision.transforms.v2.functional as TF

        s = self.size
        if self.resize == "none":
            if tuple(x.shape[-2:]) != (s, s):
                raise ValueError(f"image of {tuple(x.shape[-2:])} px where {s} x {s} was expected")
            return x
        mode = _mode(self.interpolation)
        if self.resize == "resize":
            return TF.resize(x, [s, s], interpolation=mode, antialias=True)
        x = TF.resize(x, int(s / self.crop_fraction), interpolation=mode, antialias=True)
        return TF.center_crop(x, [s, s])

    def eval_transform(self) -> Transform:
        return lambda x: self.normalize(self.fit(x))

    def train_transform(self) -> Transform:
        """RandomResizedCrop(S) and a flip for large images; the fitted image and a flip otherwise."""
        import torchvision.transforms.v2 as T

        if self.resize == "center-crop":
            geometry: Transform = T.Compose(
                [
                    T.RandomResizedCrop(self.size, interpolation=_mode(self.interpolation), antialias=True),
                    T.RandomHorizontalFlip(),
                ]
            )
        else:
            flip = T.RandomHorizontalFlip()
            geometry = lambda x: flip(self.fit(x))  # noqa: E731 - a two-step closure
        return lambda x: self.normalize(geometry(x))


def _mode(name: str):
    from torchvision.transforms import InterpolationMode

    return InterpolationMode(name)
