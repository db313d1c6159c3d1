"""Images by one name everywhere on the CLI (``--data``): sources, layouts, input preparation, batches.

- ``digits``: scikit-learn's bundled handwritten digits (1,797 real 8x8 images, 10 classes), split 80/20
  with a fixed seed and upsampled to 16x16 RGB; the offline default.
- ``cifar10``, ``cifar100``: the binary releases under ``--root`` (``--download`` fetches them; the
  python releases are pickles, which lpq never loads).
- ``imagefolder:PATH`` or a plain PATH: ImageNet-style ``train/`` + ``val/`` (or ``test/``) class folders,
  Tiny-ImageNet's release layout, or a bare folder of class folders (`lpq synth` output); any image size
  and PIL mode.
- ``wds:PATTERN``: webdataset tar shards (`shards`, extra ``lpq[wds]``); ``hf:NAME_OR_PATH[:SPLIT]``: a
  Hugging Face dataset saved to disk or in the local cache (`hub`, extra ``lpq[hf]``).

Small sets are held in memory, large ones streamed through DataLoader workers (`splits`); distilled sets
are replayed from a decoded-pixel cache (`sources`). `InputSpec` says how images become a model's input.

    from lpq.data import open_split, batches
    test = open_split("imagefolder:/data/imagenet", "test")
    for x, y in batches(test, teacher_spec, workers=8): ...
"""

from lpq.data.layout import FileList, list_split
from lpq.data.loader import Batches, batches, check_fits, default_workers
from lpq.data.sources import BadImage, CachedImages, EncodedImages, ImageFiles, ImageSet, ImageSource, decode
from lpq.data.splits import DataSpec, folder_of, load_split, open_images, open_split, parse_data, recorded
from lpq.data.transforms import IMAGENET_MEAN, IMAGENET_STD, InputSpec

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "BadImage",
    "Batches",
    "CachedImages",
    "DataSpec",
    "EncodedImages",
    "FileList",
    "ImageFiles",
    "ImageSet",
    "ImageSource",
    "InputSpec",
    "batches",
    "check_fits",
    "decode",
    "default_workers",
    "folder_of",
    "list_split",
    "load_split",
    "open_images",
    "open_split",
    "parse_data",
    "recorded",
]
