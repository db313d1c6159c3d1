"""Stage 2: class-wise synthesis on digits."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import torch
from conftest import stderr_of, torchrun
from typer.testing import CliRunner

from lpq.artifacts.teacher import load_teacher, save_teacher
from lpq.cli.app import app
from lpq.configs.synth import SynthConfig
from lpq.data import load_split
from lpq.errors import LpqError
from lpq.files import temporary
from lpq.stages.synth import synthesize

runner = CliRunner()
FAST = {"ipc": 2, "iterations": 50, "lr": 0.25}


def files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.glob("*/*.png"))}  # class images


@pytest.fixture(scope="module")
def synthesized(digits_teacher: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("syn") / "syn"
    synthesize(SynthConfig(teacher=digits_teacher, output=out, **FAST))
    return out


def test_images_have_right_count_shape_and_class(synthesized: Path, digits_teacher: Path) -> None:
    images = load_split(str(synthesized), "train")
    assert (
        images.classes == [str(i) for i in range(10)] and len(images) == 20 and images.images.shape[1:] == (3, 16, 16)
    )
    t = load_teacher(digits_teacher)
    with torch.no_grad():
        pred = t.model(t.normalize(images.images.float() / 255)).argmax(1)
    assert float((pred == images.labels).float().mean()) >= 0.9


def test_manifest_records_settings_results_and_diversity(synthesized: Path) -> None:
    from lpq.artifacts.manifest import read_manifest

    m = read_manifest(synthesized)
    assert m is not None and m.complete and len(m.groups) == 10
    assert (
        m.settings["ipc"] == 2
        and m.settings["batching"] == "classwise"
        and m.settings["lr"] == 0.25
        and m.settings["r_bn"] == 0.05
    )
    assert m.teacher_top1 is not None and m.teacher_top1 >= 90 and -1 <= (m.within_class_cosine or 0) <= 1


def test_interrupted_run_resumes_to_identical_files(synthesized: Path, digits_teacher: Path, tmp_path: Path) -> None:
    out = tmp_path / "syn"
    synthesize(SynthConfig(teacher=digits_teacher, output=out, classes=(0, 4), **FAST))
    half = temporary(out / "5")  # a class that was being written when the run died
    half.mkdir()
    (half / "00000.png").write_bytes(b"half")
    with pytest.raises(LpqError) as e:
        synthesize(SynthConfig(teacher=digits_teacher, output=out, **FAST))
    assert e.value.ref == "run-exists"
    before = dict(files(out).items())
    synthesize(SynthConfig(teacher=digits_teacher, output=out, resume=True, **FAST))
    after = files(out)
    assert all(after[k] == v for k, v in before.items() if not k.startswith(half.name))
    assert after == files(synthesized)
    groups = [json.loads(line)["group"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert groups == list(range(10))  # a metrics row per class, the first run's four and the resumed six


def test_other_runs_output_and_bad_ranges_are_refused(synthesized: Path, digits_teacher: Path, tmp_path: Path) -> None:
    cases = [
        (
            ["--ipc", "3", "--iterations", "50", "--lr", "0.25", "-o", str(synthesized), "--resume"],
            "resume-mismatch",
        ),
        (["--ipc", "0", "-o", str(tmp_path / "a")], "bad-usage: Invalid value for '--ipc'"),
        (["--classes", "8:12", "-o", str(tmp_path / "b")], "bad-class-range"),
        (["--classes", "x", "-o", str(tmp_path / "c")], "bad-option: classes"),
    ]
    for args, ref in cases:
        result = runner.invoke(app, ["synth", "--teacher", str(digits_teacher), "-q", *args])
        assert result.exit_code == 2 and ref in result.stderr, result.output
    assert len(files(synthesized)) == 20


def test_teacher_without_class_stats_is_refused(digits_teacher: Path, tmp_path: Path) -> None:
    t = load_teacher(digits_teacher)
    t.stats = {}
    save_teacher(tmp_path / "nostats.lpqt", t)
    result = runner.invoke(app, ["synth", "--teacher", str(tmp_path / "nostats.lpqt"), "-o", str(tmp_path / "s")])
    assert result.exit_code == 2 and "teacher-no-stats" in result.stderr


def test_mixed_batching_baseline_mixes_classes_on_the_same_budget(digits_teacher: Path, tmp_path: Path) -> None:
    m = synthesize(SynthConfig(teacher=digits_teacher, output=tmp_path / "mixed", batching="mixed", **FAST))
    assert m.complete and len(load_split(str(tmp_path / "mixed"), "train")) == 20
    assert len(m.groups) == 10 and all(len(g.classes) == 2 for g in m.groups)  # IPC-sized batches of several classes
    assert m.settings["iterations"] == FAST["iterations"] and m.teacher_top1 is not None and m.teacher_top1 >= 80


@pytest.mark.slow  # about 10 s of CPU (three processes): run by benchmarks/slow_tests.py
def test_torchrun_two_processes_equal_one(synthesized: Path, digits_teacher: Path, tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = tmp_path / "syn2"
    run = subprocess.run(
        torchrun(
            "synth",
            "--teacher",
            str(digits_teacher),
            "--ipc",
            "2",
            "--iterations",
            "50",
            "--lr",
            "0.25",
            "-o",
            str(out),
            "-q",
            "--device",
            "cpu",
        ),
        env=env,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, stderr_of(run)
    assert files(out) == files(synthesized)


def test_channel_moments_match_var_mean_and_their_gradient() -> None:
    from lpq.method.bn import ChannelMoments

    x = torch.randn(4, 3, 5, 6, dtype=torch.double, requires_grad=True) * 2 + 3
    mean, var = ChannelMoments.apply(x)
    ref_var, ref_mean = torch.var_mean(x, dim=[0, 2, 3], correction=0)
    assert torch.allclose(mean, ref_mean) and torch.allclose(var, ref_var)
    assert torch.autograd.gradcheck(ChannelMoments.apply, (x.detach().requires_grad_(True),))


def test_real_init_with_zero_iterations_is_a_random_real_subset(
    digits_teacher: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The random-real baseline: --init real --iterations 0 writes IPC real training images per class, exactly."""
    import lpq.stages.synth
    from lpq.data import load_split
    from lpq.stages.synth import real_choice

    out = tmp_path / "real"
    args = ["synth", "--teacher", str(digits_teacher), "--ipc", "3", "--init", "real", "--iterations", "0"]
    result = runner.invoke(app, [*args, "--seed", "4", "-o", str(out), "-q", "--json"])
    assert result.exit_code == 0, result.output
    # A finished folder copied to a machine without the training images resumes without reading them.
    monkeypatch.setattr(lpq.stages.synth, "_real_images", lambda *a: pytest.fail("read the training images"))
    again = runner.invoke(app, [*args, "--seed", "4", "-o", str(out), "--resume", "-q", "--json"])
    assert again.exit_code == 0, again.output
    monkeypatch.undo()
    assert json.loads(result.stdout)["teacher_top1"] > 90.0  # real digits, which the teacher knows
    real = load_split("digits", "train")
    picks = real_choice(real.labels, range(10), 3, seed=4)
    saved = load_split(str(out), "train")
    assert torch.equal(saved.images, real.images[[i for c in range(10) for i in picks[c]]])
    assert picks != real_choice(real.labels, range(10), 3, seed=5)  # the seed picks the subset
    bad = runner.invoke(
        app, ["synth", "--teacher", str(digits_teacher), "--iterations", "0", "-o", str(tmp_path / "x")]
    )
    assert bad.exit_code == 2 and "needs --init real" in bad.stderr


def test_a_corrupt_group_file_is_named_not_reported_as_a_bad_option(
    synthesized: Path, digits_teacher: Path, tmp_path: Path
) -> None:
    import shutil

    out = tmp_path / "syn"
    shutil.copytree(synthesized, out)
    next((out / ".classes").glob("*.json")).write_text('{"group": "not a number"}')
    result = runner.invoke(
        app,
        [
            "synth",
            "--teacher",
            str(digits_teacher),
            "-o",
            str(out),
            "--resume",
            "-q",
            "--ipc",
            "2",
            "--iterations",
            "50",
            "--lr",
            "0.25",
        ],
    )
    assert result.exit_code == 2 and "synth-bad-manifest" in result.stderr and "bad-option" not in result.stderr


def test_reading_an_image_folder_writes_nothing_into_it(tmp_path: Path, image_cache: Path) -> None:
    """The pixel cache lives under the cache directory: the folder stays a plain ImageFolder for other tools."""
    import numpy as np
    import torchvision
    from PIL import Image

    from lpq.data import open_images

    folder = tmp_path / "imgs"
    for c in ("a", "b"):
        (folder / c).mkdir(parents=True)
        for i in range(2):
            Image.fromarray(np.full((6, 6, 3), 40 * i, np.uint8)).save(folder / c / f"{i}.png")
    before = sorted(p.relative_to(folder) for p in folder.rglob("*"))
    images = open_images(str(folder))
    assert images.load(3).shape == (3, 6, 6)
    assert sorted(p.relative_to(folder) for p in folder.rglob("*")) == before
    assert len(torchvision.datasets.ImageFolder(str(folder))) == 4
    assert any((image_cache / "images").iterdir())
