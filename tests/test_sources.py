"""Data where clusters keep ImageNet (issue 30): webdataset shards (``wds:``) and Hugging Face datasets (``hf:``)
give the same pixels, labels, class statistics and accuracy as the same images in a folder."""

from __future__ import annotations

import io
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import stderr_of, torchrun
from PIL import Image
from typer.testing import CliRunner

from lpq.artifacts.teacher import load_teacher
from lpq.cli.app import app
from lpq.data import EncodedImages, ImageSet, open_split

pytest.importorskip("webdataset")
pytest.importorskip("datasets")

runner = CliRunner()
CLASSES = ["n01", "n02", "n03", "n04"]


def jpeg(rng: np.random.Generator, cls: int, size: int) -> bytes:
    """A JPEG with a class-dependent colour and texture (so a ConvNet learns something in one epoch)."""
    base = np.zeros((size, size, 3), np.float64)
    base[..., cls % 3] = 150 + 25 * cls
    pixels = np.clip(base + rng.normal(0, 40, base.shape), 0, 255).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="JPEG", quality=90)
    return out.getvalue()


def make_sets(root: Path, size: int, per_class: dict[str, int]) -> dict[str, str]:
    """The same JPEGs as an ImageFolder, as webdataset shards (train in 4, test in 1) and as a saved HF dataset."""
    import datasets
    import webdataset as wds

    rng = np.random.default_rng(size)
    images: dict[str, list[tuple[int, bytes]]] = {}
    for split, n in per_class.items():
        images[split] = [(c, jpeg(rng, c, size)) for c in range(len(CLASSES)) for _ in range(n)]
        for i, (c, data) in enumerate(images[split]):  # the folder's sorted order: class, then file name
            path = root / "folder" / split / CLASSES[c] / f"{i:05d}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
    shards = root / "shards"
    shards.mkdir()
    (shards / "classes.txt").write_text("\n".join(CLASSES) + "\n")
    for split, items in images.items():
        parts = 4 if split == "train" else 1
        for p, chunk in enumerate(np.array_split(np.arange(len(items)), parts)):
            with wds.TarWriter(str(shards / f"{split}-{p}.tar")) as sink:
                for i in chunk.tolist():
                    c, data = items[i]
                    sink.write({"__key__": f"{i:06d}", "jpg": data, "cls": c})
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=CLASSES)})
    hub = datasets.DatasetDict(
        {
            split: datasets.Dataset.from_dict(
                {"image": [{"bytes": d, "path": None} for _, d in items], "label": [c for c, _ in items]},
                features=features,
            )
            for split, items in images.items()
        }
    )
    hub.save_to_disk(str(root / "hub"))
    return {
        "folder": str(root / "folder"),
        "wds": f"wds:{shards}/train-{{0..3}}.tar",
        "hf": f"hf:{root / 'hub'}",
    }


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return make_sets(tmp_path_factory.mktemp("small"), 24, {"train": 12, "test": 5})


@pytest.fixture(scope="module")
def large(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return make_sets(tmp_path_factory.mktemp("large"), 72, {"train": 3, "test": 2})


@pytest.mark.parametrize("kind", ["wds", "hf"])
def test_the_same_images_give_the_same_pixels_labels_and_classes(
    small: dict[str, str], large: dict[str, str], kind: str
) -> None:
    for split in ("train", "test"):
        folder, other = open_split(small["folder"], split), open_split(small[kind], split)
        assert isinstance(folder, ImageSet) and isinstance(other, ImageSet)  # 24 px: held in memory, as folders
        assert other.classes == CLASSES and torch.equal(other.labels, folder.labels)
        assert torch.equal(other.images, folder.images)
        streamed, files = open_split(large[kind], split), open_split(large["folder"], split)
        assert isinstance(streamed, EncodedImages)  # 72 px: decoded when loaded, in workers
        assert torch.equal(streamed.labels, files.labels) and len(streamed) == len(files)
        assert all(torch.equal(streamed.load(i), files.load(i)) for i in range(len(files)))
        assert (streamed.sizes() == files.sizes()).all()


def squeeze_json(*args: str) -> dict:
    result = runner.invoke(app, ["squeeze", *args, "--json", "-q"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def same_stats(a: Path, b: Path, exact: bool = True) -> None:
    ta, tb = load_teacher(a), load_teacher(b)
    assert ta.stats.keys() == tb.stats.keys()
    for name in ta.stats:
        sa, sb = ta.stats[name], tb.stats[name]
        for x, y in ((sa.mean, sb.mean), (sa.var, sb.var), (sa.count, sb.count)):
            assert torch.equal(x, y) if exact else torch.allclose(x, y, rtol=1e-10, atol=1e-12), name


def test_squeeze_from_shards_and_a_dataset_equals_the_folder(small: dict[str, str], tmp_path: Path) -> None:
    """Teacher, class statistics and test top-1, trained and measured from each source: the same numbers."""
    common = ["--model", "convnet", "--epochs", "1", "--batch-size", "16"]
    out = {k: tmp_path / f"{k}.lpqt" for k in ("folder", "wds", "hf")}
    docs = {k: squeeze_json("--data", small[k], *common, "-o", str(out[k])) for k in out}
    assert docs["wds"]["test_top1"] == docs["folder"]["test_top1"] == docs["hf"]["test_top1"]
    same_stats(out["folder"], out["wds"])
    same_stats(out["folder"], out["hf"])


@pytest.mark.slow  # about 20 s of CPU (six processes): run by benchmarks/slow_tests.py
def test_squeeze_under_torchrun_shares_statistics_and_evaluation(small: dict[str, str], tmp_path: Path) -> None:
    """Two ranks each pass half of the shards; their float64 sums added give the one-process statistics."""
    teacher = tmp_path / "t.lpqt"
    squeeze_json("--data", small["folder"], "--epochs", "1", "--batch-size", "16", "-o", str(teacher))
    one = squeeze_json("--data", small["folder"], "--weights", str(teacher), "--epochs", "0", "-o", str(tmp_path / "a"))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for kind in ("wds", "hf"):
        out = tmp_path / f"ddp-{kind}.lpqt"
        args = ["squeeze", "--data", small[kind], "--weights", str(teacher), "--epochs", "0", "-o", str(out)]
        run = subprocess.run(torchrun(*args, "--json", "-q"), env=env, capture_output=True, text=True)
        assert run.returncode == 0, stderr_of(run)
        assert json.loads(run.stdout)["test_top1"] == one["test_top1"]  # rank 0 prints; counts added over ranks
        same_stats(tmp_path / "a", out, exact=False)


def test_squeeze_under_torchrun_refuses_to_train(small: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("lpq.stages.squeeze.init_distributed", lambda: (0, 2))  # as rank 0 of two would see it
    result = runner.invoke(app, ["squeeze", "--data", small["wds"], "--epochs", "1", "-o", "/tmp/never.lpqt"])
    assert result.exit_code == 2 and "squeeze-distributed-training" in result.stderr and "--weights" in result.stderr


def test_missing_library_and_bad_specs_are_one_line(small: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    real = builtins.__import__

    def without(name: str, *args: object, **kwargs: object) -> object:
        if name.split(".")[0] in ("webdataset", "datasets"):
            raise ImportError(name)
        return real(name, *args, **kwargs)  # type: ignore[arg-type]

    cases = [
        (small["wds"].replace("{0..3}", "{0..9}"), "data-not-found"),
        (small["hf"] + ":nosplit", "data-not-found"),
        (small["hf"] + "#image=pixels", "data-bad-columns"),
    ]
    for data, ref in cases:
        result = runner.invoke(app, ["squeeze", "--data", data, "--epochs", "1", "-o", "/tmp/never.lpqt"])
        assert result.exit_code == 2 and ref in result.stderr and len(result.stderr.strip().splitlines()) == 1
    monkeypatch.setattr(builtins, "__import__", without)
    for data, extra in ((small["wds"], "lpq[wds]"), (small["hf"], "lpq[hf]")):
        result = runner.invoke(app, ["squeeze", "--data", data, "--epochs", "1", "-o", "/tmp/never.lpqt"])
        assert result.exit_code == 2 and extra in result.stderr and len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(("label", "ref"), [(-1, "data-no-label"), (57, "data-bad-label")])
def test_dataset_rows_without_a_class_are_one_line(tmp_path: Path, label: int, ref: str) -> None:
    """ClassLabel's -1 ("no label", as datasets writes unlabelled rows) and a value past the class names: one line
    naming the row, before any training (the previous code: a 48-line bincount traceback for -1)."""
    import datasets

    rng = np.random.default_rng(0)
    features = datasets.Features({"image": datasets.Image(), "label": datasets.Value("int64")})
    rows = {"image": [{"bytes": jpeg(rng, c, 16), "path": None} for c in (0, 1, 2)], "label": [0, label, 1]}
    saved = datasets.Dataset.from_dict(rows, features=features)
    saved = saved.cast_column("label", datasets.ClassLabel(names=list(CLASSES)))  # the values pass through as they are
    saved.save_to_disk(str(tmp_path / "hub"))
    result = runner.invoke(
        app, ["squeeze", "--data", f"hf:{tmp_path / 'hub'}", "--epochs", "1", "-o", str(tmp_path / "t")]
    )
    assert result.exit_code == 2 and ref in result.stderr and "row 1 has label" in result.stderr, result.output
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_truncated_arrow_file_is_named(tmp_path: Path) -> None:
    """pyarrow says how many bytes it missed, not in which file (issue 38, item 4)."""
    import datasets

    rng = np.random.default_rng(0)
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=list(CLASSES))})
    rows = {"image": [{"bytes": jpeg(rng, c % 3, 16), "path": None} for c in range(12)], "label": [0, 1, 2] * 4}
    datasets.Dataset.from_dict(rows, features=features).save_to_disk(str(tmp_path / "hub"))
    (arrow,) = (tmp_path / "hub").glob("*.arrow")
    with open(arrow, "r+b") as f:
        f.truncate(arrow.stat().st_size // 2)
    result = runner.invoke(
        app, ["squeeze", "--data", f"hf:{tmp_path / 'hub'}", "--epochs", "1", "-o", str(tmp_path / "t")]
    )
    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1, result.output
    assert f"data-bad-file: {arrow} is truncated or damaged" in result.stderr, result.stderr


@pytest.mark.parametrize(("cut", "says"), [("block", "no end-of-archive marker"), ("member", "ends inside a sample")])
def test_a_truncated_shard_is_refused_by_name(tmp_path: Path, cut: str, says: str) -> None:
    """Issue 38, item 3: a shard cut at a tar block boundary lost samples silently (225 of 300, exit 0), one cut
    inside a member said a sample had 'no a label'; both are refused as truncated, naming the shard."""
    import tarfile

    import webdataset as wds

    rng = np.random.default_rng(0)
    whole, shards = tmp_path / "whole.tar", tmp_path / "shards"
    shards.mkdir()
    with wds.TarWriter(str(whole)) as sink:
        for i in range(8):
            sink.write({"__key__": f"{i:06d}", "jpg": jpeg(rng, i % 3, 16), "cls": i % 3})
    with tarfile.open(whole) as tar:
        last = list(tar)[-2]  # the last sample's image (its .cls follows)
    data = whole.read_bytes()
    end = last.offset if cut == "block" else last.offset_data + 10  # before its header, or inside its bytes
    (shards / "train-0.tar").write_bytes(data[:end])
    result = runner.invoke(
        app, ["squeeze", "--data", f"wds:{shards}/train-0.tar", "--epochs", "1", "-o", str(tmp_path / "t")]
    )
    assert result.exit_code == 2 and "truncated" in result.stderr and says in result.stderr, result.output
    assert "train-0.tar" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def small_folder(root: Path) -> Path:
    for c in ("a", "b"):
        (root / c).mkdir(parents=True)
        for i in range(2):
            Image.fromarray(np.full((16, 16, 3), 40 * i + 100 * (c == "b"), np.uint8)).save(root / c / f"{i}.png")
    return root


def test_a_file_name_that_is_not_utf8_is_read(tmp_path: Path) -> None:
    """Issue 38, item 9: a Latin-1 name in a class folder was a traceback in the folder's manifest digest."""
    from lpq.data import open_images

    folder = small_folder(tmp_path / "set")
    os.rename(bytes(folder / "a") + b"/0.png", bytes(folder / "a") + b"/caf\xe9.png")
    images = open_images(str(folder))
    assert len(images) == 4 and images.fingerprint() == open_images(str(folder)).fingerprint()
    result = runner.invoke(app, ["squeeze", "--data", str(folder), "--epochs", "1", "-q", "-o", str(tmp_path / "t")])
    assert result.exit_code == 0, result.output


def test_links_that_lead_nowhere_are_counted(tmp_path: Path) -> None:
    """Issue 38, item 9: a symlink loop (or a link to a missing file) was skipped without a word."""
    from lpq.data.layout import list_split
    from lpq.errors import LpqWarning

    folder = small_folder(tmp_path / "set")
    (folder / "a" / "loop.png").symlink_to(folder / "a" / "loop.png")
    (folder / "a" / "gone.png").symlink_to(folder / "a" / "missing.png")
    with pytest.warns(LpqWarning, match=r"2 link\(s\) in .*/a lead nowhere .* and are skipped"):
        files = list_split(folder, "train")
    assert len(files) == 4
