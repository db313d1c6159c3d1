"""Datasets by one name everywhere on the CLI (``--data``), with their normalization and fingerprint.

- ``digits``: scikit-learn's bundled handwritten digits (1,797 real 8x8 images, 10 classes), split 80/20
  with a fixed seed and upsampled to 16x16 RGB; the offline default.
- ``cifar10``, ``cifar100``: the binary releases under ``--root`` (``--download`` fetches them; the
  python releases are pickles, which lpq never loads).
- ``imagefolder:PATH`` or a plain PATH: ``PATH/train/<class>/*`` and ``PATH/val/`` (or ``test/``), the
  layout of ImageNet-1K, Tiny-ImageNet-style folders, ../shared/data's CIFAR-10 and `lpq synth` output.
  A folder with class folders directly inside is one split on its own (a synthetic image set).

Images are held as uint8 (N, 3, H, W) in memory when they share one size, which is the case for every
dataset named here; the fingerprint is a sha256 over labels and pixels (or file bytes), in image order.

    from lpq.data import load_split
    train = load_split("digits", "train")
"""

from lpq.data.datasets import ImageSet, load_split, parse_data

__all__ = ["ImageSet", "load_split", "parse_data"]
