"""Stage 6: students from stored labels, with DKR and CA."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from lpq.cli.app import app
from lpq.errors import LpqError
from lpq.format import TempSchedule
from lpq.labels.relabel import RelabelConfig, relabel
from lpq.labels.temperature import teacher_temperature
from lpq.train import TrainConfig, train
from lpq.train.train import fit_student_temperature, kd_loss

runner = CliRunner()


@pytest.fixture(scope="module")
def compact_labels(digits_teacher: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Digits labels pruned x4 and quantized to MR-3 with 8-bit values."""
    out = tmp_path_factory.mktemp("labels") / "mr3.lpql"
    relabel(RelabelConfig(images="digits", teacher=digits_teacher, output=out, epochs=12, batch_size=64,
                          ratio=4, scheme="mr", top_k=3, values="i8"))
    return out


def test_student_from_pruned_quantized_labels_beats_chance_widely(compact_labels: Path, tmp_path: Path) -> None:
    result = train(TrainConfig(images="digits", labels=compact_labels, output=tmp_path / "run", epochs=12, eval_every=6))
    assert result.top1 >= 70.0  # chance is 10%
    lines = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in lines] == list(range(1, 13))
    assert lines[0]["teacher_temp"] == 20.0 and lines[-1]["teacher_temp"] < 20.0  # DKR schedule moved
    assert len({m["student_temp"] for m in lines}) > 1  # CA refitted T_s
    assert (tmp_path / "run" / "best.safetensors").exists() and json.loads((tmp_path / "run" / "result.json").read_text())["top1"] == result.top1


def test_resume_continues_exactly(compact_labels: Path, tmp_path: Path) -> None:
    base = dict(images="digits", labels=compact_labels, epochs=4, eval_every=2)
    train(TrainConfig(output=tmp_path / "straight", **base))
    train(TrainConfig(output=tmp_path / "split", stop_after=2, **base))
    with pytest.raises(LpqError) as e:
        train(TrainConfig(output=tmp_path / "split", **base))
    assert e.value.ref == "run-exists"
    with pytest.raises(LpqError) as e:
        train(TrainConfig(output=tmp_path / "split", resume=True, **{**base, "lr": 0.01}))
    assert e.value.ref == "resume-mismatch"
    train(TrainConfig(output=tmp_path / "split", resume=True, **base))
    a = load_file(str(tmp_path / "straight" / "last.safetensors"))
    b = load_file(str(tmp_path / "split" / "last.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert len((tmp_path / "split" / "metrics.jsonl").read_text().splitlines()) == 4


def test_labels_of_other_images_and_other_eval_classes_are_refused(compact_labels: Path, tmp_path: Path) -> None:
    from PIL import Image

    for cls in range(10):
        (tmp_path / "imgs" / str(cls)).mkdir(parents=True)
        Image.new("RGB", (16, 16), (cls, 0, 0)).save(tmp_path / "imgs" / str(cls) / "0.png")
    result = runner.invoke(app, ["train", str(tmp_path / "imgs"), str(compact_labels), "-o", str(tmp_path / "r1")])
    assert result.exit_code == 2 and "fingerprint-mismatch" in result.stderr
    for split in ("train", "test"):
        for cls in ("a", "b"):
            (tmp_path / "ev" / split / cls).mkdir(parents=True)
            Image.new("RGB", (16, 16)).save(tmp_path / "ev" / split / cls / "0.png")
    result = runner.invoke(app, ["train", "digits", str(compact_labels), "--eval-data", str(tmp_path / "ev"), "-o", str(tmp_path / "r2")])
    assert result.exit_code == 2 and "class-mismatch" in result.stderr
    assert not (tmp_path / "r1").exists() and not (tmp_path / "r2").exists()


def test_step_schedule_follows_method_defaults() -> None:
    s = TempSchedule()
    temps = [teacher_temperature(s, e, 300) for e in (0, 29, 30, 60, 299)]
    assert temps[:4] == pytest.approx([20.0, 20.0, 14.0, 9.8]) and temps[4] == 2.0
    assert teacher_temperature(TempSchedule(kind="cosine"), 299, 300) == pytest.approx(2.0)
    assert teacher_temperature(TempSchedule(kind="reverse-step"), 0, 300) == 2.0


def test_calibrated_temperature_recovers_a_known_scale() -> None:
    logits = torch.randn(64, 10)
    target = torch.softmax(logits / 0.25, dim=1)
    assert fit_student_temperature(logits, target, torch.linspace(0.01, 1.0, 100)) == pytest.approx(0.25, abs=0.006)
    assert kd_loss(logits, target, 0.25) < 1e-5


def test_torchrun_two_processes_train_and_learn(compact_labels: Path, tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", "29534",
                          "-m", "lpq", "train", "digits", str(compact_labels), "--epochs", "6", "--eval-every", "3",
                          "-o", str(tmp_path / "ddp"), "-q", "--device", "cpu", "--json"], env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    result = json.loads(run.stdout)
    assert result["top1"] >= 40.0
