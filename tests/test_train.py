"""Stage 6: students from stored labels, with DKR and CA."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import stderr_of, torchrun
from safetensors.torch import load_file
from typer.testing import CliRunner

from lpq.cli.app import app
from lpq.configs.relabel import RelabelConfig
from lpq.configs.train import TrainConfig
from lpq.errors import LpqError
from lpq.format import TempSchedule
from lpq.method.loss import fit_student_temperature, kd_loss
from lpq.method.targets import hard_targets
from lpq.method.temperature import teacher_temperature
from lpq.stages.relabel import relabel
from lpq.stages.train import eval_epochs, train, train_seeds

runner = CliRunner()


@pytest.fixture(scope="module")
def compact_labels(digits_teacher: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Digits labels pruned x4 and quantized to MR-3 with 8-bit values."""
    out = tmp_path_factory.mktemp("labels") / "mr3.lpql"
    relabel(
        RelabelConfig(
            images="digits",
            teacher=digits_teacher,
            output=out,
            epochs=12,
            batch_size=64,
            ratio=4,
            scheme="mr",
            top_k=3,
            values="i8",
        )
    )
    return out


@pytest.fixture(scope="module")
def small(digits_teacher: Path, digits_subset: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """The digits subset (10 images a class) and its labels pruned x4, MR-3, 8-bit: a student's epoch is 4 steps of 25
    images (23 of 64 on the whole set), for the tests of a run's mechanics (resume, seeds, locks, CA options)."""
    labels = tmp_path_factory.mktemp("small") / "mr3.lpql"
    relabel(
        RelabelConfig(
            images=digits_subset,
            teacher=digits_teacher,
            output=labels,
            epochs=12,
            batch_size=25,
            ratio=4,
            scheme="mr",
            top_k=3,
            values="i8",
        )
    )
    return digits_subset, labels


def test_student_from_pruned_quantized_labels_beats_chance_widely(small: tuple[str, Path], tmp_path: Path) -> None:
    """100 real images with labels pruned x4 and kept as MR-3 in 8 bits teach a student 75-79% of the digits test
    set in 30 epochs (seeds 0 and 1), chance being 10%."""
    result = train(TrainConfig(images=small[0], labels=small[1], output=tmp_path / "run", epochs=30, evals=2))
    assert result.top1 >= 70.0
    lines = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in lines] == list(range(1, 31))
    assert [m["epoch"] for m in lines if m["top1"] is not None] == [15, 30]  # evenly spread, the last always
    assert lines[-1]["top1"] == result.top1  # the headline is the final epoch
    assert result.eval_seconds == pytest.approx(sum(m["eval_seconds"] for m in lines))
    assert lines[0]["teacher_temp"] == 20.0 and lines[-1]["teacher_temp"] < 20.0  # DKR schedule moved
    assert len({m["student_temp"] for m in lines}) > 1  # CA refitted T_s
    assert json.loads((tmp_path / "run" / "result.json").read_text())["top1"] == result.top1
    with open(tmp_path / "run" / "metrics.csv", newline="") as f:
        table = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in table] == list(range(1, 31))
    assert {"loss", "lr", "teacher_temp", "student_temp", "seconds", "eval_seconds"} <= set(table[0])
    assert table[-1]["top1"] == f"{result.top1:.6g}" and table[0]["top1"] == ""  # scored epochs only


def test_a_student_at_its_own_size_trains_and_evaluates_there(small: tuple[str, Path], tmp_path: Path) -> None:
    """Labels made at the digits teacher's 16 px train an 8 px student: its ConvNet's classifier reads 128 x 1 x 1
    features (at 16 px, 128 x 2 x 2), and the test images are prepared at 8 px too."""
    out = tmp_path / "small"
    result = runner.invoke(
        app, ["train", small[0], str(small[1]), "--input-size", "8", "--epochs", "1", "-o", str(out), "-q"]
    )
    assert result.exit_code == 0, result.output
    assert load_file(out / "last.safetensors")["classifier.weight"].shape == (10, 128)
    assert json.loads((out / "config.json").read_text())["input_size"] == 8


def test_distilled_dataset_under_persistent_workers_replays_each_epochs_own_batches(compact_labels: Path) -> None:
    """Two epochs through one DataLoader with persistent workers: each epoch's batches are the ones its own draw
    names (replayed here in the main process) and its targets are at its own DKR temperature (20 at epoch 0,
    20 * 0.7^2 = 9.8 at epoch 11 of 12: the step every round(30 * 12 / 300) = 1 epoch, floored at 2)."""
    from torch.utils.data import DataLoader

    from lpq.format import LpqlReader
    from lpq.method.batches import DistilledDataset, epoch_draw

    data = DistilledDataset("digits", compact_labels, epochs=12)
    with LpqlReader(compact_labels) as r:
        kept, per_epoch = r.header.prune.kept, r.header.relabel.batches_per_epoch
    loader = DataLoader(data, sampler=data.sampler, batch_size=None, num_workers=2, persistent_workers=True)
    for epoch, temp in ((0, 20.0), (11, 20.0 * 0.7**11)):
        data.set_epoch(epoch)
        assert data.temperature == pytest.approx(max(temp, 2.0))
        got = list(loader)
        want = [data[(epoch, b)] for b in epoch_draw(kept, per_epoch, 0, epoch)]
        assert len(got) == len(want) == per_epoch
        for (x, t), (wx, wt) in zip(got, want):
            torch.testing.assert_close(x, wx)
            torch.testing.assert_close(t, wt)
        stored = data.reader().read(epoch_draw(kept, per_epoch, 0, epoch)[0])
        kept_classes = torch.from_numpy(stored.indices[0]).long()
        want_t = torch.softmax(torch.from_numpy(stored.values[0]).float() / max(temp, 2.0), 0)
        torch.testing.assert_close(got[0][1][0][kept_classes], want_t)  # MR: the stored top-k at this T alone
    with pytest.raises(LpqError, match="dataset-needs-sampler"):
        data[0]


def test_resume_continues_exactly(small: tuple[str, Path], tmp_path: Path) -> None:
    base = {"images": small[0], "labels": small[1], "epochs": 2, "evals": 2}
    train(TrainConfig(output=tmp_path / "straight", **base))
    train(TrainConfig(output=tmp_path / "split", stop_after=1, **base))
    with pytest.raises(LpqError) as e:
        train(TrainConfig(output=tmp_path / "split", **base))
    assert e.value.ref == "run-exists"
    with pytest.raises(LpqError) as e:
        train(TrainConfig(output=tmp_path / "split", resume=True, **{**base, "lr": 0.01}))
    assert e.value.ref == "resume-mismatch"
    older = _as_lpq_0_2_recorded_it(tmp_path / "split", tmp_path / "older")
    train(TrainConfig(output=tmp_path / "split", resume=True, lr=0.001, **base))  # the default, given: same plan
    train(TrainConfig(output=older, resume=True, **base))
    a = load_file(str(tmp_path / "straight" / "last.safetensors"))
    for run in ("split", "older"):
        b = load_file(str(tmp_path / run / "last.safetensors"))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
        assert len((tmp_path / run / "metrics.jsonl").read_text().splitlines()) == 2


def _as_lpq_0_2_recorded_it(run: Path, copy: Path) -> Path:
    """A copy of a run as lpq 0.2 left it: its settings resolved in config.json, no plan.json."""
    import shutil

    shutil.copytree(run, copy)
    plan = json.loads((copy / "plan.json").read_text())
    (copy / "plan.json").unlink()
    schedule, student = plan["schedule"], plan["student"]
    options = json.loads((copy / "config.json").read_text()) | {
        "lr": plan["lr"],
        "weight_decay": plan["weight_decay"],
        "temp_schedule": schedule["kind"],
        "start_temp": schedule["start"],
        "floor_temp": schedule["floor"],
        "temp_factor": schedule["factor"],
        "temp_every": schedule["every"],
        "calibrate": student["fit"] is not None,
        "student_temp": student["temp"],
        "ca_grid": "{:g}:{:g}:{}".format(*student["grid"]),
    }
    (copy / "config.json").write_text(json.dumps(options))
    return copy


def test_run_folders_edited_or_moved(small: tuple[str, Path], tmp_path: Path) -> None:
    """Issue 38, item 6: a checkpoint holding a tensor of another shape, or claiming epochs its metrics do not
    record, is refused in one line (a traceback, and a run 'finished' early at epochs 1, 2, 6, before); a run
    folder moved elsewhere resumes, and a refused resume names the setting that differs."""
    import shutil

    base = {"images": small[0], "labels": small[1], "epochs": 6, "evals": 1}
    train(TrainConfig(output=tmp_path / "run", stop_after=2, **base))
    state = torch.load(tmp_path / "run" / "state.pt", weights_only=True)
    for name, edit, ref in (
        ("shape", {"model": {**state["model"], "classifier.bias": torch.zeros(3)}}, "resume-unreadable"),
        ("epoch", {"epoch": 5}, "resume-inconsistent"),
    ):
        bad = tmp_path / name
        shutil.copytree(tmp_path / "run", bad)
        torch.save({**state, **edit}, bad / "state.pt")
        result = runner.invoke(app, ["train", small[0], str(small[1]), "--epochs", "6", "-o", str(bad), "--resume"])
        assert result.exit_code == 2 and ref in result.stderr and len(result.stderr.strip().splitlines()) == 1
    moved = tmp_path / "elsewhere" / "moved"
    shutil.move(tmp_path / "run", moved)
    result = train(TrainConfig(output=moved, resume=True, **base))
    assert result.epochs == 6
    with pytest.raises(LpqError, match=r"\(lr: 0.001 there, 0.01 here\)"):
        train(TrainConfig(output=moved, resume=True, **{**base, "lr": 0.01}))


def test_a_state_that_is_not_a_checkpoint_is_refused_in_one_line(small: tuple[str, Path], tmp_path: Path) -> None:
    from lpq.stages.train import STATE

    base = {"images": small[0], "labels": small[1], "epochs": 2}
    train(TrainConfig(output=tmp_path / "run", stop_after=1, **base))
    (tmp_path / "run" / STATE).write_bytes(b"not a checkpoint")
    args = ["train", small[0], str(small[1]), "--epochs", "2", "--resume"]
    result = runner.invoke(app, [*args, "-o", str(tmp_path / "run")])
    assert result.exit_code == 2 and "is not a train checkpoint" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


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
    result = runner.invoke(
        app, ["train", "digits", str(compact_labels), "--eval-data", str(tmp_path / "ev"), "-o", str(tmp_path / "r2")]
    )
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


@pytest.mark.slow  # about 20 s: run by benchmarks/slow_tests.py
def test_torchrun_two_processes_train_as_one_process(compact_labels: Path, tmp_path: Path) -> None:
    """Under torchrun every rank takes every stored batch and trains on its half: the same steps, schedule and
    global batch as one process, so accuracy agrees within seed noise (BatchNorm sees half batches on CPU)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    args = ["train", "digits", str(compact_labels), "--epochs", "2", "--evals", "1", "-q", "--device", "cpu", "--json"]
    run = subprocess.run(torchrun(*args, "-o", str(tmp_path / "ddp")), env=env, capture_output=True, text=True)
    assert run.returncode == 0, stderr_of(run)
    one = subprocess.run(
        [sys.executable, "-m", "lpq", *args, "-o", str(tmp_path / "one")], env=env, capture_output=True
    )
    assert one.returncode == 0
    ddp, single = json.loads(run.stdout), json.loads(one.stdout)
    epochs = [
        [json.loads(x) for x in (tmp_path / d / "metrics.jsonl").read_text().splitlines()] for d in ("ddp", "one")
    ]
    assert [m["lr"] for m in epochs[0]] == [m["lr"] for m in epochs[1]]  # as many optimizer steps per epoch
    assert [m["teacher_temp"] for m in epochs[0]] == [m["teacher_temp"] for m in epochs[1]]
    assert ddp["top1"] >= 30.0 and abs(ddp["top1"] - single["top1"]) < 15.0  # chance is 10%


def test_sharded_losses_average_to_the_whole_batch_gradient() -> None:
    """Each rank's slice loss, weighted by shard_rows, averaged over ranks as DDP averages gradients, gives the
    whole batch's gradient (a linear model, so no BatchNorm), for batches that split evenly, unevenly, and
    smaller than the world."""
    from lpq.method.batches import shard_rows

    torch.manual_seed(0)
    for size, world in ((8, 2), (7, 3), (2, 3)):
        x, t = torch.randn(size, 5), torch.softmax(torch.randn(size, 4), 1)
        w = torch.randn(5, 4, requires_grad=True)
        kd_loss(x @ w, t, 2.0).backward()
        whole, w.grad = w.grad.clone(), None
        for rank in range(world):
            rows, weight = shard_rows(size, rank, world)
            (kd_loss(x[rows] @ w, t[rows], 2.0) * weight / world).backward()
        assert torch.allclose(w.grad, whole, atol=1e-6), (size, world)


def test_seeds_report_mean_and_sd_of_final_epochs_and_resume_keeps_finished_seeds(
    small: tuple[str, Path], tmp_path: Path
) -> None:
    base = {"images": small[0], "labels": small[1], "epochs": 2, "evals": 1, "output": tmp_path / "seeds"}
    result = train_seeds(TrainConfig(seeds=2, **base))
    top1 = [r.top1 for r in result.runs]
    assert result.seeds == [0, 1] and len(set(top1)) == 2  # different seeds, different students
    assert result.top1_mean == pytest.approx(sum(top1) / 2) and result.top1_sd == pytest.approx(
        abs(top1[0] - top1[1]) / 2**0.5
    )
    stamp = (tmp_path / "seeds" / "seed-0" / "last.safetensors").stat().st_mtime_ns
    more = train_seeds(TrainConfig(seeds=3, resume=True, **base))
    assert more.seeds == [0, 1, 2] and [r.top1 for r in more.runs[:2]] == top1
    assert (tmp_path / "seeds" / "seed-0" / "last.safetensors").stat().st_mtime_ns == stamp  # not retrained
    doc = json.loads((tmp_path / "seeds" / "seeds.json").read_text())
    assert [r["top1"] for r in doc["runs"]] == [r.top1 for r in more.runs]
    with pytest.raises(LpqError) as e:
        train_seeds(TrainConfig(seeds=2, **base))
    assert e.value.ref == "run-exists"


def test_cli_seeds_print_mean_and_sd(small: tuple[str, Path], tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        [
            "train",
            small[0],
            str(small[1]),
            "--epochs",
            "2",
            "--evals",
            "1",
            "--seeds",
            "2",
            "-o",
            str(tmp_path / "r"),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["seeds"] == [0, 1] and len(doc["runs"]) == 2 and doc["top1_sd"] >= 0


def test_hard_targets_are_the_mixed_classes() -> None:
    classes, partner = torch.tensor([2, 0, 1]), torch.tensor([1, 2, 0])
    t = hard_targets(classes, partner, 0.75, 4)
    expected = torch.zeros(3, 4)
    for i in range(3):
        expected[i, classes[i]] += 0.75
        expected[i, classes[partner[i]]] += 0.25
    assert torch.equal(t, expected) and torch.allclose(t.sum(1), torch.ones(3))


def test_hard_target_baseline_learns_and_refuses_temperatures(compact_labels: Path, tmp_path: Path) -> None:
    result = train(
        TrainConfig(images="digits", labels=compact_labels, output=tmp_path / "hard", epochs=8, evals=1, targets="hard")
    )
    lines = [json.loads(x) for x in (tmp_path / "hard" / "metrics.jsonl").read_text().splitlines()]
    assert {m["teacher_temp"] for m in lines} == {1.0} and {m["student_temp"] for m in lines} == {1.0}
    assert result.top1 >= 50.0  # chance is 10%
    with pytest.raises(ValueError, match="hard targets take no temperature"):
        TrainConfig(images="digits", labels=compact_labels, targets="hard", start_temp=4.0)


def test_eval_epochs_spread_evenly_and_include_the_last() -> None:
    assert eval_epochs(300, 2) == {150, 300} and eval_epochs(10, 1) == {10} and eval_epochs(3, 5) == {1, 2, 3}


def test_ca_fit_grid_and_follow_from_cli_and_config(small: tuple[str, Path], tmp_path: Path) -> None:
    conf = tmp_path / "ca.toml"
    conf.write_text('ca-fit = "last-batch"\nca-grid = "0.5:4:8"\nepochs = 3\n')
    base = ["train", small[0], str(small[1]), "--evals", "1", "--json"]
    result = runner.invoke(app, [*base, "--config", str(conf), "-o", str(tmp_path / "ca")])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    saved = json.loads((tmp_path / "ca" / "config.json").read_text())
    assert saved["ca_fit"] == "last-batch" and saved["ca_grid"] == [0.5, 4.0, 8]
    plan = json.loads((tmp_path / "ca" / "plan.json").read_text())
    assert plan["student"] == {"temp": 1.0, "fit": "last-batch", "grid": [0.5, 4.0, 8]}
    grid = [0.5 + i * 0.5 for i in range(8)]
    fits = [json.loads(x)["student_temp"] for x in (tmp_path / "ca" / "metrics.jsonl").read_text().splitlines()]
    assert len(fits) == 3 and all(min(abs(t - g) for g in grid) < 1e-6 for t in fits)
    edge = sum(min(abs(t - 0.5), abs(t - 4.0)) < 1e-6 for t in fits) / 3
    assert doc["ca_edge_share"] == pytest.approx(edge)

    result = runner.invoke(app, [*base, "--epochs", "3", "--student-temp", "follow", "-o", str(tmp_path / "fol")])
    assert result.exit_code == 0, result.output
    lines = [json.loads(x) for x in (tmp_path / "fol" / "metrics.jsonl").read_text().splitlines()]
    assert [m["student_temp"] for m in lines] == [m["teacher_temp"] for m in lines]
    assert json.loads(result.stdout)["ca_edge_share"] is None  # no CA, nothing fitted

    for bad in (["--ca-grid", "1:0.5:10"], ["--ca-grid", "nonsense"], ["--student-temp", "follow", "--calibrate"]):
        result = runner.invoke(app, [*base, *bad, "-o", str(tmp_path / "bad")])
        assert result.exit_code == 2 and "bad-option" in result.output, result.output


def test_ranks_sharing_a_gpu_use_gloo(monkeypatch: pytest.MonkeyPatch) -> None:
    from lpq.runtime import backend

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    assert backend() == "nccl"
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "8")  # eight ranks on two GPUs: NCCL would refuse
    assert backend() == "gloo"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    assert backend() == "gloo"


def test_a_corrupt_label_file_under_workers_is_one_line_and_exit_2(compact_labels: Path, tmp_path: Path) -> None:
    """The DataLoader re-raises a worker's error as type(traceback text): ours must survive that as themselves."""
    from lpq.format import LpqlReader

    bad = tmp_path / "flipped.lpql"
    data = bytearray(compact_labels.read_bytes())
    with LpqlReader(compact_labels) as r:
        spots = [offset + 12 + length // 2 for offset, length in r._where.values()]  # inside every batch payload
    for at in spots:
        data[at] ^= 0x10
    bad.write_bytes(bytes(data))
    result = runner.invoke(
        app, ["train", "digits", str(bad), "--epochs", "1", "--workers", "2", "-o", str(tmp_path / "r")]
    )
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2, result.output
    assert len(lines) == 1 and "lpql-chunk-checksum" in lines[0] and "Traceback" not in result.output, lines


def test_errors_rebuilt_from_a_worker_traceback_keep_their_reference() -> None:
    from lpq.data.sources import BadImage
    from lpq.errors import LpqError
    from lpq.format import LpqlError

    text = (
        "Caught LpqlError in DataLoader worker process 0.\nOriginal Traceback (most recent call last):\n"
        '  File "x.py", line 1, in f\nlpq.format.errors.LpqlError: lpql-chunk-checksum: f.lpql: batch 3; fix it\n'
    )
    e = LpqlError(text)
    assert (e.ref, str(e)) == ("lpql-chunk-checksum", "lpql-chunk-checksum: f.lpql: batch 3; fix it")
    bad = BadImage("Caught BadImage in x.\nlpq.data.sources.BadImage: data-bad-image: cannot read image a.png (b)")
    assert bad.ref == "data-bad-image" and "a.png" in str(bad)
    assert LpqError("plain text\nValueError: not ours").ref == "worker-error"


def test_a_run_killed_before_its_first_checkpoint_can_run_again(small: tuple[str, Path], tmp_path: Path) -> None:
    """All such a run leaves is config.json (and perhaps metrics.jsonl): --resume starts it from epoch 0, and a
    fresh run takes the folder over; both end as an uninterrupted run does."""
    base = {"images": small[0], "labels": small[1], "epochs": 1, "evals": 1}
    taken, resumed = tmp_path / "taken-over", tmp_path / "resumed"
    taken.mkdir()
    (taken / "config.json").write_text('{"settings": "of a run killed at once"}')  # no progress: taken over
    straight = train(TrainConfig(output=taken, **base))  # ends as a run in an empty folder does
    resumed.mkdir()
    (resumed / "config.json").write_text((taken / "config.json").read_text().replace("taken-over", "resumed"))
    again = train(TrainConfig(output=resumed, resume=True, **base))
    assert again.top1 == straight.top1
    assert [len((d / "metrics.jsonl").read_text().splitlines()) for d in (taken, resumed)] == [1, 1]


def test_eval_data_defaults_to_the_teachers_data_never_to_digits(digits_teacher: Path, tmp_path: Path) -> None:
    """Without --eval-data a student is evaluated on what its images' teacher was trained on (through the synth
    manifest and the teacher file), on a dataset's own test split when the images are that dataset, and a
    teacher whose data folder is gone stops the run with one line naming --eval-data."""
    import dataclasses

    from lpq.artifacts.manifest import MANIFEST, SynthManifest
    from lpq.artifacts.teacher import load_teacher, save_teacher
    from lpq.stages.train import default_eval_data

    assert default_eval_data("digits") == "digits"
    teacher = load_teacher(digits_teacher)
    cases = {"kept": str(tmp_path), "gone": str(tmp_path / "no-such-folder")}
    for name, data in cases.items():
        path = save_teacher(
            tmp_path / f"{name}.lpqt",
            dataclasses.replace(teacher, meta=teacher.meta.model_copy(update={"data": data})),
        )
        syn = tmp_path / f"syn-{name}"
        syn.mkdir()
        manifest = SynthManifest(
            tool="t", teacher=str(path), teacher_sha256="0" * 64, settings={}, class_names=[], complete=True
        )
        (syn / MANIFEST).write_text(manifest.model_dump_json())
        cases[name] = str(syn)
    assert default_eval_data(cases["kept"]) == str(tmp_path)
    with pytest.raises(LpqError) as e:
        default_eval_data(cases["gone"])
    assert e.value.ref == "eval-data-unknown" and "--eval-data" in str(e.value)


def test_a_run_folder_in_use_is_refused_and_a_stale_lock_taken_over(small: tuple[str, Path], tmp_path: Path) -> None:
    from lpq.artifacts.run import LOCK, RunRecord

    args = ["train", small[0], str(small[1]), "--epochs", "1", "--evals", "1"]
    busy = tmp_path / "busy"
    with RunRecord(busy).lock():  # this process holds it, as a live `lpq train` would; another process is refused
        run = subprocess.run([sys.executable, "-m", "lpq", *args, "-o", str(busy)], capture_output=True, text=True)
    assert run.returncode == 2 and f"pid {os.getpid()}" in run.stderr and "run-busy" in run.stderr, run.stderr
    stale = tmp_path / "stale"
    stale.mkdir()
    (stale / LOCK).write_text("pid 999999999\n")  # left by a process that died without unlocking
    result = runner.invoke(app, [*args, "-o", str(stale)])
    assert result.exit_code == 0, result.output
    assert "took over the lock of pid 999999999" in (stale / "log.txt").read_text() and not (stale / LOCK).exists()


def test_paths_recorded_by_squeeze_and_synth_resolve_from_another_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pipeline run with relative paths in one directory, trained from another (issue 38, item 9): the teacher
    records its data folder and synth.json its teacher as absolute paths, so lpq train finds its default
    evaluation data (the previous code: eval-data-unknown, the relative paths read from the wrong place)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, n in (("train", 6), ("test", 2)):
        for c in ("a", "b"):
            (tmp_path / "work" / "data" / split / c).mkdir(parents=True)
            for i in range(n):
                pixels = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(tmp_path / "work" / "data" / split / c / f"{i}.png")
    monkeypatch.chdir(tmp_path / "work")
    for line in (
        "squeeze --data data --epochs 1 -o t.lpqt -q",
        "synth --teacher t.lpqt --ipc 2 --iterations 2 -o syn -q",
        "relabel syn --teacher t.lpqt --epochs 1 -o labels.lpql -q",
    ):
        result = runner.invoke(app, line.split())
        assert result.exit_code == 0, result.output
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    work = tmp_path / "work"
    result = runner.invoke(app, ["train", str(work / "syn"), str(work / "labels.lpql"), "--epochs", "1", "-q"])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "elsewhere" / "run" / "config.json").read_text())["eval_data"] == str(work / "data")
