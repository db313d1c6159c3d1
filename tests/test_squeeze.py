"""Stage 1: data, models, and the teacher's per-class BatchNorm statistics."""

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
from lpq.data import ImageSet, InputSpec, batches, load_split
from lpq.data.transforms import normalize
from lpq.errors import LpqError
from lpq.method.bn import record_class_stats
from lpq.models import MODELS, bn_layers, build_model
from lpq.runtime import Precision

runner = CliRunner()


def small_set(n_per_class: int = 6, classes: int = 3, size: int = 16) -> ImageSet:
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n_per_class * classes, 3, size, size), dtype=torch.uint8, generator=g)
    labels = torch.arange(classes).repeat_interleave(n_per_class)[torch.randperm(n_per_class * classes, generator=g)]
    return ImageSet("t", images, labels, [str(i) for i in range(classes)], (0.5,) * 3, (0.25,) * 3)


@pytest.mark.reference
@pytest.mark.parametrize("name", ["convnet", "resnet18", "mobilenet_v2"])
def test_class_stats_equal_direct_computation(name: str) -> None:
    """Per-class BN input statistics from mixed-class batches equal each class's images passed alone, with the
    mean and biased variance taken directly over their activations."""
    torch.manual_seed(0)
    data = small_set()
    net = build_model(name, data.num_classes, data.image_size).eval()
    spec = InputSpec(size=data.image_size, mean=data.mean, std=data.std)
    cpu = Precision.choose("none", torch.device("cpu"))
    stats = record_class_stats(net, batches(data, spec, batch_size=7), data.num_classes, cpu)
    inputs: dict[str, torch.Tensor] = {}
    hooks = [
        m.register_forward_pre_hook(lambda _m, i, n=n: inputs.__setitem__(n, i[0].detach()))
        for n, m in bn_layers(net).items()
    ]
    for c in range(data.num_classes):
        with torch.no_grad():
            net(normalize(spec, data.images[data.labels == c]))  # class c's images alone, one pass
        for layer, x in inputs.items():
            flat = x.double().transpose(0, 1).reshape(x.shape[1], -1)
            assert torch.allclose(stats[layer].mean[c], flat.mean(dim=1), atol=1e-4)
            assert torch.allclose(stats[layer].var[c], flat.var(dim=1, unbiased=False), atol=1e-4)
    for h in hooks:
        h.remove()
    assert len(stats) == len(bn_layers(net))


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_registered_model_takes_small_and_large_inputs(name: str) -> None:
    for size in (16, 32):
        out = build_model(name, 7, size).eval()(torch.zeros(2, 3, size, size))
        assert out.shape == (2, 7)


def test_digits_teacher_reaches_90_percent_and_round_trips(digits_teacher: Path) -> None:
    t = load_teacher(digits_teacher)
    assert t.meta.test_top1 is not None and t.meta.test_top1 >= 90.0
    test = load_split("digits", "test")
    with torch.no_grad():
        acc = (t.model(t.normalize(test.images.float() / 255)).argmax(1) == test.labels).float().mean() * 100
    assert float(acc) == pytest.approx(t.meta.test_top1, abs=1e-4)  # the reloaded weights are the trained ones
    assert t.meta.data_fingerprint == load_split("digits", "train").fingerprint()
    assert set(t.stats) == set(t.meta.bn_layers) and t.stats[t.meta.bn_layers[0]].mean.shape == (10, 128)


def test_fingerprint_changes_with_any_pixel() -> None:
    a = load_split("digits", "train")
    before = a.fingerprint()
    a.images[5, 0, 3, 3] ^= 1
    assert a.fingerprint() != before


def write_folder(root: Path, counts: dict[str, int], size: int = 8) -> Path:
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for cls, n in counts.items():
            d = root / split / cls
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(d / f"{i}.png")
    return root


def test_image_folder_loads_in_sorted_order(tmp_path: Path) -> None:
    root = write_folder(tmp_path, {"b": 2, "a": 3})
    s = load_split(f"imagefolder:{root}", "train")
    assert s.classes == ["a", "b"] and s.labels.tolist() == [0, 0, 0, 1, 1] and s.images.shape == (5, 3, 8, 8)
    first = np.asarray(Image.open(root / "train" / "a" / "0.png"))
    assert np.array_equal(s.images[0].permute(1, 2, 0).numpy(), first)


@pytest.mark.parametrize(
    "setup,ref",
    [
        (lambda p: (p / "train").mkdir(parents=True), "data-no-classes"),
        (lambda p: write_folder(p, {"a": 2, "b": 0}), "data-empty-class"),
        (
            lambda p: (write_folder(p, {"a": 2}), (p / "train" / "a" / "x.jpg").write_bytes(b"not a jpeg")),
            "data-bad-image",
        ),
        (lambda p: None, "data-no-split"),
    ],
)
def test_bad_image_folders_are_refused_by_name(tmp_path: Path, setup, ref: str) -> None:
    setup(tmp_path)
    with pytest.raises(LpqError) as e:
        load_split(str(tmp_path), "train")
    assert e.value.ref == ref


def test_squeeze_cli_refuses_bad_input_in_one_line(tmp_path: Path, digits_teacher: Path) -> None:
    from safetensors.torch import save_file

    wrong = tmp_path / "r18.safetensors"
    save_file({k: v.contiguous() for k, v in build_model("resnet18", 10, 16).state_dict().items()}, str(wrong))
    cases = [
        (["--data", "digits", "--weights", str(wrong)], "weights-keys"),  # resnet18 tensors for a convnet
        (["--data", str(tmp_path / "nowhere")], "data-not-found"),
        (["--data", "digits", "--model", "vgg99"], "unknown-model"),
    ]
    for args, ref in cases:
        result = runner.invoke(app, ["squeeze", *args, "-o", str(tmp_path / "t.lpqt"), "--quiet"])
        assert result.exit_code == 2 and ref in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "t.lpqt").exists()


def test_model_without_batchnorm_is_refused() -> None:
    from lpq.method.bn import ClassStatsRecorder

    with pytest.raises(LpqError) as e:
        ClassStatsRecorder(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3, 2)), 2)
    assert e.value.ref == "model-no-batchnorm"


def test_squeeze_with_weights_skips_training_and_reports_json(tmp_path: Path, digits_teacher: Path) -> None:
    from safetensors.torch import save_file

    t = load_teacher(digits_teacher)
    w = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in t.model.state_dict().items()}, str(w))
    result = runner.invoke(app, ["squeeze", "--weights", str(w), "-o", str(tmp_path / "t.lpqt"), "--json", "-q"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["test_top1"] == pytest.approx(t.meta.test_top1)
    meta = load_teacher(tmp_path / "t.lpqt").meta
    assert meta.weights_sha256 == t.meta.weights_sha256 and meta.training["epochs"] == 0  # loaded, not trained


def test_stats_per_class_takes_the_statistics_over_a_seeded_sample_of_each_class(
    tmp_path: Path, digits_teacher: Path
) -> None:
    """--stats-per-class N: every class's statistics count N images' positions, and equal a direct pass over
    exactly the images stats_sample chose (seeded: the same on a rerun)."""
    from lpq.stages.squeeze import stats_sample

    args = ["squeeze", "--weights", str(digits_teacher), "--stats-per-class", "5", "--json", "-q"]
    result = runner.invoke(app, [*args, "-o", str(tmp_path / "t.lpqt")])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["stats_images"] == 50  # 10 classes x 5
    t = load_teacher(tmp_path / "t.lpqt")
    train = load_split("digits", "train")
    sample = stats_sample(train, 5, seed=0)
    assert len(sample) == 50 and sorted(torch.bincount(sample.labels).tolist()) == [5] * 10
    first = t.meta.bn_layers[0]
    inputs: list[torch.Tensor] = []
    hook = bn_layers(t.model)[first].register_forward_pre_hook(lambda _m, i: inputs.append(i[0].detach()))
    spec = t.meta.input_spec()
    for c in range(10):
        inputs.clear()
        with torch.no_grad():
            t.model.eval()(normalize(spec, sample.images[sample.labels == c]))
        flat = inputs[0].double().transpose(0, 1).reshape(inputs[0].shape[1], -1)
        assert t.stats[first].count[c] == flat.shape[1]  # 5 images' positions
        assert torch.allclose(t.stats[first].mean[c], flat.mean(dim=1), atol=1e-4)
    hook.remove()
    again = runner.invoke(app, [*args, "-o", str(tmp_path / "t2.lpqt")])
    assert again.exit_code == 0 and torch.equal(
        load_teacher(tmp_path / "t2.lpqt").stats[first].mean, t.stats[first].mean
    )


@pytest.mark.parametrize("kind,label_bytes", [("cifar10", 1), ("cifar100", 2)])
def test_cifar_binary_release_is_read_without_pickle(tmp_path: Path, kind: str, label_bytes: int) -> None:
    from lpq.data.named import _CIFAR

    _, _, folder, train_files, test_file, _, names_file = _CIFAR[kind]
    base = tmp_path / folder
    base.mkdir()
    rng = np.random.default_rng(0)
    n_classes = 10 if kind == "cifar10" else 100
    (base / names_file).write_text("\n".join(f"class{i}" for i in range(n_classes)) + "\n\n")
    expected = {}
    for name in [*train_files, test_file]:
        pixels = rng.integers(0, 256, (4, 3072), dtype=np.uint8)
        labels = rng.integers(0, n_classes, (4, label_bytes), dtype=np.uint8)
        np.concatenate([labels, pixels], axis=1).tofile(base / name)
        expected[name] = (labels[:, -1], pixels.reshape(4, 3, 32, 32))
    test = load_split(kind, "test", root=tmp_path)
    assert test.labels.tolist() == expected[test_file][0].tolist()
    assert np.array_equal(test.images.numpy(), expected[test_file][1]) and len(test.classes) == n_classes
    assert len(load_split(kind, "train", root=tmp_path)) == 4 * len(train_files)
    with pytest.raises(LpqError) as e:
        load_split(kind, "train", root=tmp_path / "elsewhere")
    assert e.value.ref == "data-not-found" and "--download" in str(e.value)


def test_weight_files_that_are_not_weights_are_refused(tmp_path: Path) -> None:
    from lpq.models.weights import read_weights

    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 64)
    torch.save({"obj": object.__new__(ImageSet)}, tmp_path / "code.pt")  # would run code if unpickled freely
    for name in ("junk.safetensors", "code.pt"):
        with pytest.raises(LpqError) as e:
            read_weights(str(tmp_path / name))
        assert e.value.ref == "weights-unreadable"


def test_interrupted_teacher_training_resumes_to_the_same_teacher(tmp_path: Path, monkeypatch) -> None:
    from lpq.configs.squeeze import SqueezeConfig
    from lpq.stages.squeeze import Trainer, checkpoint_path, squeeze

    whole = tmp_path / "whole.lpqt"
    squeeze(SqueezeConfig(data="digits", epochs=2, output=whole))
    assert not checkpoint_path(whole).exists()  # removed once the teacher is written

    out = tmp_path / "resumed.lpqt"
    save = Trainer.save_epoch

    def save_then_stop(self: Trainer, path: Path, epochs_done: int) -> None:
        save(self, path, epochs_done)
        if epochs_done == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "save_epoch", save_then_stop)
    with pytest.raises(KeyboardInterrupt):
        squeeze(SqueezeConfig(data="digits", epochs=2, output=out))
    monkeypatch.setattr(Trainer, "save_epoch", save)
    assert checkpoint_path(out).exists() and not out.exists()

    other_lr = ["squeeze", "--data", "digits", "--epochs", "2", "--lr", "0.1", "-o", str(out), "--resume"]
    moved = runner.invoke(app, other_lr)
    assert moved.exit_code == 2 and "other settings" in moved.output and "Traceback" not in moved.output
    fresh = runner.invoke(app, ["squeeze", "--data", "digits", "--epochs", "2", "-o", str(out)])
    assert fresh.exit_code == 2 and "pass --resume" in fresh.output  # the interrupted run is not overwritten

    squeeze(SqueezeConfig(data="digits", epochs=2, output=out, resume=True))
    assert out.read_bytes() == whole.read_bytes()
    assert not checkpoint_path(out).exists()
    # The record beside each teacher: one metrics row per epoch, the resumed run's equal to the straight one's.
    rows = [(tmp_path / f"{n}.lpqt.metrics.jsonl").read_text().splitlines() for n in ("whole", "resumed")]
    epochs = [[{k: v for k, v in json.loads(r).items() if k != "seconds"} for r in lines] for lines in rows]
    assert [e["epoch"] for e in epochs[0]] == [1, 2] and epochs[0] == epochs[1]
    assert (tmp_path / "whole.lpqt.metrics.csv").read_text().startswith("epoch,loss,train_top1,lr,seconds\n")


def test_a_checkpoint_that_is_not_one_is_refused_in_one_line(tmp_path: Path) -> None:
    from lpq.configs.squeeze import SqueezeConfig
    from lpq.stages.squeeze import checkpoint_path, record_of

    out = tmp_path / "t.lpqt"
    cfg = SqueezeConfig(data="digits", epochs=1, output=out)
    record_of(cfg).start(cfg.identity())  # the record a run leaves before its first checkpoint
    checkpoint_path(out).write_bytes(b"not a checkpoint")
    result = runner.invoke(app, ["squeeze", "--data", "digits", "--epochs", "1", "-o", str(out), "--resume"])
    assert result.exit_code == 2 and "is not a squeeze checkpoint" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not out.exists()
