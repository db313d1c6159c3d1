"""How images become a model's input, as a record: the side S, the resize rule, the normalization.

One torch-free record, `InputSpec`, that the teacher file, the label header (its ``augment`` table) and pretrained
weights' presets all convert to; lpq.data.transforms applies it to pixels.

Resize rules (torchvision's reference recipe for large images, native size for small ones):

- ``none``: images are used at their own size, which must be S (CIFAR, Tiny-ImageNet, synthetic sets).
- ``resize``: every image is resized to S x S (a small set trained at another size).
- ``center-crop``: evaluation resizes the shorter side to S / crop_fraction (256 for S = 224 at 0.875)
  and takes the central S x S crop; training takes RandomResizedCrop(S, scale 0.08-1) and a flip.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

ResizeRule = Literal["none", "resize", "center-crop"]
CROP_FRACTION = 0.875  # torchvision's reference evaluation: Resize(256) + CenterCrop(224)


class InputSpec(BaseModel):
    """How images become a model's input: side S, the resize rule, the normalization (module docstring).

    spec = InputSpec(size=32, mean=(0.49, 0.48, 0.45), std=(0.25, 0.24, 0.26))   # native 32 px images
    x = lpq.data.transforms.eval_transform(spec)(uint8_image)                     # (3, 32, 32) float32
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
