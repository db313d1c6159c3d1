"""ImageNet shape, offline: folders of mixed-size images in every PIL mode, a pretrained torchvision teacher
from a temporary TORCH_HOME, and the whole pipeline at 224 px through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from lpq.artifacts.teacher import load_teacher
from lpq.cli.app import app
from lpq.data import ImageFiles, open_images, open_split
from lpq.format import LpqlReader
from lpq.models import build_model

runner = CliRunner()
CLASSES = 6
MODES = ["RGB", "L", "P", "CMYK", "RGBA", "RGB"]  # grayscale, palette, CMYK and alpha all become RGB


def write_image(path: Path, rng: np.random.Generator, mode: str) -> None:
    h, w = (int(v) for v in rng.integers(40, 320, 2))
    base = np.repeat(np.linspace(0, 255, w, dtype=np.uint8)[None, :, None], h, axis=0)  # a gradient, not noise:
    pixels = (base + rng.integers(0, 60, (h, w, 3), dtype=np.uint8)).astype(np.uint8)  # JPEG keeps it recognizable
    image = Image.fromarray(pixels).convert(mode)
    image.save(path.with_suffix(".png" if mode in ("P", "RGBA") else ".JPEG"))


def imagenet_folder(root: Path, per_class: dict[str, int]) -> Path:
    rng = np.random.default_rng(0)
    for split, n in per_class.items():
        for c in range(CLASSES):
            folder = root / split / f"n{1440764 + c:08d}"  # wnid-like names: sorted order is class order
            folder.mkdir(parents=True)
            for i in range(n):
                write_image(folder / f"{split}_{c}_{i}", rng, MODES[(c + i) % len(MODES)])
    return root


@pytest.fixture(scope="module")
def imagenet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return imagenet_folder(tmp_path_factory.mktemp("imagenet"), {"train": 3, "val": 1})


@pytest.fixture
def torch_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A TORCH_HOME holding a stand-in for torchvision's resnet18.IMAGENET1K_V1 under its expected file name."""
    home = tmp_path / "torch-home"
    (home / "hub" / "checkpoints").mkdir(parents=True)
    torch.manual_seed(0)
    torch.save(
        build_model("resnet18", CLASSES, 224).state_dict(), home / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    )
    monkeypatch.setenv("TORCH_HOME", str(home))
    return home


def cli(*args: str | Path) -> dict:
    quiet = ["-q"] if args[0] not in ("prune", "quantize", "inspect") else []  # those draw no progress bars
    result = runner.invoke(app, [*map(str, args), "--json", *quiet])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_large_mixed_folders_are_streamed_in_sorted_order(imagenet: Path) -> None:
    train = open_split(str(imagenet), "train")
    assert isinstance(train, ImageFiles) and len(train) == 3 * CLASSES
    assert train.classes == sorted(train.classes) and train.labels.tolist() == [
        c for c in range(CLASSES) for _ in range(3)
    ]
    sizes = train.sizes()
    assert len({tuple(s) for s in sizes.tolist()}) > 1
    for i in range(len(train)):  # every PIL mode decodes to RGB at the file's own size
        x = train.load(i)
        assert x.dtype == torch.uint8 and x.shape == (3, *sizes[i])


def test_pretrained_teacher_pipeline_at_224_px_offline(imagenet: Path, torch_home: Path, tmp_path: Path) -> None:
    teacher = tmp_path / "teacher.lpqt"
    sq = cli(
        "squeeze",
        "--data",
        imagenet,
        "--weights",
        "torchvision:resnet18.IMAGENET1K_V1",
        "--epochs",
        0,
        "--workers",
        1,
        "-o",
        teacher,
    )
    assert (sq["architecture"], sq["image_size"], sq["resize"], sq["classes"]) == (
        "resnet18",
        224,
        "center-crop",
        CLASSES,
    )
    meta = load_teacher(teacher).meta
    assert meta.mean == pytest.approx((0.485, 0.456, 0.406)) and meta.crop_fraction == pytest.approx(224 / 256)
    assert meta.data_fingerprint.startswith("manifest:")
    syn = tmp_path / "syn"
    cli("synth", "--teacher", teacher, "--ipc", 1, "--iterations", 2, "-o", syn)
    assert open_images(str(syn)).sizes().tolist() == [[224, 224]] * CLASSES
    labels = tmp_path / "labels.lpql"
    cli("relabel", syn, "--teacher", teacher, "--epochs", 4, "--batch-size", 3, "--workers", 1, "-o", labels)
    with LpqlReader(labels) as r:
        a = r.header.augment
        assert (a.input_size, a.eval_resize, a.eval_crop_fraction) == (224, "center-crop", pytest.approx(0.875))
    cli("prune", labels, "--ratio", 2, "-o", tmp_path / "x2.lpql")
    cli("quantize", tmp_path / "x2.lpql", "--top-k", 3, "--values", "i8", "-o", tmp_path / "small.lpql")
    run = cli(
        "train",
        syn,
        tmp_path / "small.lpql",
        "--model",
        "resnet18",
        "--epochs",
        1,
        "--eval-data",
        imagenet,
        "-o",
        tmp_path / "run",
    )
    assert run["epochs"] == 1 and 0.0 <= run["top1"] <= 100.0
    # A pretrained teacher needs no class statistics to relabel.
    direct = cli(
        "relabel",
        syn,
        "--teacher",
        "torchvision:resnet18.IMAGENET1K_V1",
        "--epochs",
        1,
        "--batch-size",
        3,
        "-o",
        tmp_path / "direct.lpql",
    )
    assert direct["batches_kept"] == 2


def test_pretrained_weights_missing_offline_name_the_file(
    imagenet: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))
    result = runner.invoke(
        app,
        [
            "squeeze",
            "--data",
            str(imagenet),
            "--weights",
            "torchvision:IMAGENET1K_V1",
            "--model",
            "resnet18",
            "-o",
            str(tmp_path / "t.lpqt"),
        ],
    )
    assert result.exit_code == 2 and "weights-not-cached" in result.stderr
    assert str(tmp_path / "empty" / "hub" / "checkpoints") in result.stderr and "resnet18-f37072fd.pth" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "t.lpqt").exists()


def test_class_count_of_the_weights_must_match_the_data(
    imagenet: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    (home / "hub" / "checkpoints").mkdir(parents=True)
    torch.save(build_model("resnet18", 1000, 224).state_dict(), home / "hub" / "checkpoints" / "resnet18-f37072fd.pth")
    monkeypatch.setenv("TORCH_HOME", str(home))
    result = runner.invoke(
        app,
        [
            "squeeze",
            "--data",
            str(imagenet),
            "--weights",
            "torchvision:resnet18.DEFAULT",
            "-o",
            str(tmp_path / "t.lpqt"),
        ],
    )
    assert result.exit_code == 2 and "weights-class-count" in result.stderr and "1000 classes" in result.stderr


def test_option_errors_come_before_reading_data(tmp_path: Path) -> None:
    """No data is read (the folder does not even exist) before the options are refused."""
    for args, ref in (
        (["--epochs", "0"], "squeeze-no-teacher"),
        (["--model", "resnet999"], "unknown-model"),
        (["--weights", "torchvision:resnet18.NOPE"], "weights-unknown"),
    ):
        result = runner.invoke(app, ["squeeze", "--data", "digits", *args, "-o", str(tmp_path / "t.lpqt")])
        assert result.exit_code == 2 and ref in result.stderr, result.output


def test_a_corrupt_file_stops_with_its_name_or_is_skipped_and_counted(tmp_path: Path, torch_home: Path) -> None:
    root = imagenet_folder(tmp_path / "data", {"train": 2, "val": 1})
    bad = root / "train" / f"n{1440764:08d}" / "broken.JPEG"
    bad.write_bytes(b"\xff\xd8 this is no JPEG")
    args = ["squeeze", "--data", str(root), "--weights", "torchvision:resnet18.DEFAULT", "--workers", "1"]
    result = runner.invoke(app, [*args, "-o", str(tmp_path / "t.lpqt")])
    assert result.exit_code == 2 and "data-bad-image" in result.stderr and str(bad) in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "t.lpqt").exists()
    doc = cli(*args, "--skip-bad-images", "-o", tmp_path / "t.lpqt")
    assert doc["bad_images_skipped"] == 1 and doc["train_images"] == 2 * CLASSES + 1


def fake_hub_cache(home: Path, repo_id: str, state: dict[str, torch.Tensor]) -> None:
    """A Hugging Face cache holding ``state`` as repo_id's model.safetensors, as a past download leaves it."""
    from safetensors.torch import save_file

    repo = home / "hub" / f"models--{repo_id.replace('/', '--')}"
    sha = "0" * 40
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(sha)
    (repo / "snapshots" / sha).mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in state.items()}, str(repo / "snapshots" / sha / "model.safetensors"))


@pytest.mark.slow  # about 20 s: run by benchmarks/slow_tests.py
def test_timm_teacher_loads_its_pretrained_tag_offline_from_the_hub_cache(imagenet: Path, tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    timm = pytest.importorskip("timm")
    home = tmp_path / "hf"
    env = {**os.environ, "HF_HOME": str(home), "HF_HUB_OFFLINE": "1"}
    args = [
        sys.executable,
        "-m",
        "lpq",
        "squeeze",
        "--data",
        str(imagenet),
        "--weights",
        "timm:resnet18.a1_in1k",
        "--workers",
        "0",
        "-o",
        str(tmp_path / "t.lpqt"),
        "--json",
        "-q",
    ]
    missing = subprocess.run(args, capture_output=True, text=True, env=env, check=False)
    assert (
        missing.returncode == 2 and "weights-not-cached" in missing.stderr and "timm/resnet18.a1_in1k" in missing.stderr
    )
    fake_hub_cache(home, "timm/resnet18.a1_in1k", timm.create_model("resnet18", num_classes=CLASSES).state_dict())
    run = subprocess.run(args, capture_output=True, text=True, env=env, check=False)
    assert run.returncode == 0, run.stderr[-2000:]
    doc = json.loads(run.stdout)
    assert doc["architecture"] == "timm:resnet18" and doc["image_size"] == 224  # timm's own preset
    meta = load_teacher(tmp_path / "t.lpqt").meta
    assert meta.interpolation == "bicubic" and meta.crop_fraction == pytest.approx(0.95, abs=0.01)


def test_tiny_imagenet_release_layout_reads_like_its_image_folder(tmp_path: Path) -> None:
    """train/<wnid>/images/*.JPEG and val/images/ + val_annotations.txt, in ImageFolder order."""
    from lpq.data import list_split

    rng = np.random.default_rng(1)
    wnids = ["n02", "n01", "n03"]
    release, folder = tmp_path / "release", tmp_path / "folder"
    for w in wnids:
        (release / "train" / w / "images").mkdir(parents=True)
        for i in (1, 0):
            image = Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8))
            image.save(release / "train" / w / "images" / f"{w}_{i}.JPEG")
            (folder / "train" / w).mkdir(parents=True, exist_ok=True)
            image.save(folder / "train" / w / f"{w}_{i}.JPEG")
    (release / "val" / "images").mkdir(parents=True)
    lines = []
    for n, w in enumerate(["n03", "n01", "n02", "n01"]):
        image = Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8))
        image.save(release / "val" / "images" / f"val_{n}.JPEG")
        (folder / "test" / w).mkdir(parents=True, exist_ok=True)
        image.save(folder / "test" / w / f"val_{n}.JPEG")
        lines.append(f"val_{n}.JPEG\t{w}\t0\t0\t8\t8")
    (release / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")
    for split in ("train", "test"):
        a, b = list_split(release, split), list_split(folder, split)
        assert a.classes == b.classes == sorted(wnids) and a.labels.tolist() == b.labels.tolist()
        assert [p.name for p in a.files] == [p.name for p in b.files]
        x, y = open_split(str(release), split), open_split(str(folder), split)
        assert x.fingerprint() == y.fingerprint()  # the same images, labels and order


def test_in_memory_and_streamed_paths_give_the_same_images(tmp_path: Path) -> None:
    from lpq.data import ImageFiles, ImageSet, list_split

    root = imagenet_folder(tmp_path / "data", {"train": 2, "val": 1})
    small = tmp_path / "small"
    for i, f in enumerate(list_split(root, "train").files):
        (small / "train" / f.parent.name).mkdir(parents=True, exist_ok=True)
        with Image.open(f) as im:
            im.convert("RGB").resize((24, 24)).save(small / "train" / f.parent.name / f"{i}.png")
    held = open_split(str(small), "train")
    streamed = ImageFiles("x", list_split(small, "train"))
    cached = open_images(str(small))
    assert isinstance(held, ImageSet) and held.fingerprint() == cached.fingerprint()
    for i in range(len(held)):
        assert torch.equal(held.load(i), streamed.load(i)) and torch.equal(held.load(i), cached.load(i))


@pytest.mark.parametrize(
    "name",
    [
        "resnet18",
        "mobilenet_v3_small",
        "efficientnet_b0",
        "shufflenet_v2_x0_5",
        "regnet_y_400mf",
        "convnet",
        "timm:resnet18",
    ],
)
def test_models_by_name_take_small_and_imagenet_inputs(name: str) -> None:
    if name.startswith("timm:"):
        pytest.importorskip("timm")
    for size in (32, 224):
        net = build_model(name, 7, size).eval()
        with torch.no_grad():
            assert net(torch.zeros(2, 3, size, size)).shape == (2, 7)


def test_every_torchvision_classifier_is_a_model_name() -> None:
    from lpq.errors import LpqError
    from lpq.models import available_models, check_model_name

    names = available_models()
    assert {"convnet", "resnet18", "vit_b_16", "convnext_tiny", "efficientnet_v2_s"} <= set(names) and len(names) > 70
    for name in names:
        check_model_name(name)
    with pytest.raises(LpqError, match="unknown-model"):
        check_model_name("fasterrcnn_resnet50_fpn")  # a detection model, not a classifier
