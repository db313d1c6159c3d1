"""Runs that report when nobody watches (issue 28): TensorBoard event files, the synth contact sheet, lpq compare
and its plot, one compression figure everywhere, and files skipped said once."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from lpq.cli.app import app
from lpq.configs.relabel import RelabelConfig
from lpq.stages.relabel import relabel

runner = CliRunner()


def cli(*args: object) -> dict:
    result = runner.invoke(app, [*map(str, args), "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def labels(digits_teacher: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("labels")
    full = folder / "full.lpql"
    relabel(RelabelConfig(images="digits", teacher=digits_teacher, output=full, epochs=4, batch_size=128))
    small = folder / "small.lpql"
    relabel(
        RelabelConfig(images="digits", teacher=digits_teacher, output=small, epochs=4, batch_size=128, ratio=2, top_k=2)
    )
    return {"full": full, "small": small}


@pytest.fixture(scope="module")
def subset_labels(
    digits_teacher: Path, digits_subset: str, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    """Full and x2 top-2 labels of the digits subset (10 images a class): students that train in a second."""
    folder = tmp_path_factory.mktemp("subset-labels")
    out = {"full": folder / "full.lpql", "small": folder / "small.lpql"}
    relabel(RelabelConfig(images=digits_subset, teacher=digits_teacher, output=out["full"], epochs=4, batch_size=25))
    relabel(
        RelabelConfig(
            images=digits_subset, teacher=digits_teacher, output=out["small"], epochs=4, batch_size=25, ratio=2, top_k=2
        )
    )
    return out


def scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder))
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def test_train_writes_tensorboard_scalars_and_compare_reads_the_runs(
    subset_labels: dict[str, Path], digits_subset: str, tmp_path: Path
) -> None:
    board = tmp_path / "tb"
    common = ["--epochs", "2", "--evals", "1", "-q"]
    cli("train", digits_subset, subset_labels["full"], *common, "-o", tmp_path / "full", "--tensorboard", board)
    cli("train", digits_subset, subset_labels["small"], *common, "--seeds", "2", "-o", tmp_path / "small")
    written = scalars(board)
    metrics = [json.loads(x) for x in (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()]
    assert [s for s, _ in written["loss"]] == [1, 2]
    assert [v for _, v in written["loss"]] == pytest.approx([m["loss"] for m in metrics])
    assert [s for s, _ in written["top1"]] == [2]  # evaluated once, at the final epoch
    assert (tmp_path / "full" / "metrics.csv").is_file() and (tmp_path / "full" / "log.txt").is_file()

    plot = tmp_path / "acc.png"
    doc = cli("compare", tmp_path / "full", tmp_path / "small", "--plot", plot)
    full, small = doc["rows"]
    inspected = {k: cli("inspect", subset_labels[k])["compression_vs_full"] for k in subset_labels}
    assert full["compression"] == inspected["full"] and small["compression"] == inspected["small"]
    assert small["seeds"] == 2 and small["top1_sd"] > 0 and full["seeds"] == 1 and full["top1_sd"] == 0
    assert full["label_bytes"] == subset_labels["full"].stat().st_size
    with Image.open(plot) as im:
        assert im.format == "PNG" and im.width > 300
    table = runner.invoke(app, ["compare", str(tmp_path / "full"), str(tmp_path / "small")])
    assert table.exit_code == 0 and " B" in table.stdout and "%" in table.stdout and "x" in table.stdout
    refused = runner.invoke(app, ["compare", str(tmp_path)])
    assert refused.exit_code == 2 and "compare-not-a-run" in refused.stderr


def test_a_run_started_with_relative_paths_compares_from_anywhere(
    labels: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 38, item 9: config.json held the label path as typed, so compare from another folder showed "-"."""
    (tmp_path / "work").mkdir()
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "work" / "l.lpql").write_bytes(labels["small"].read_bytes())
    monkeypatch.chdir(tmp_path / "work")
    cli("train", "digits", "l.lpql", "--epochs", "1", "-q", "-o", "run")
    monkeypatch.chdir(tmp_path / "elsewhere")
    (row,) = cli("compare", tmp_path / "work" / "run")["rows"]
    assert row["compression"] == cli("inspect", labels["small"])["compression_vs_full"]
    config = tmp_path / "work" / "run" / "config.json"
    recorded = json.loads(config.read_text())
    assert recorded["labels"] == str(tmp_path / "work" / "l.lpql") and recorded["images"] == "digits"
    config.write_text(json.dumps({**recorded, "labels": "l.lpql"}))  # as 0.2.0 recorded it: resumes from there
    monkeypatch.chdir(tmp_path / "work")
    cli("train", "digits", "l.lpql", "--epochs", "1", "--resume", "-q", "-o", "run")


def wandb_records(data: bytes, block: int = 32768) -> list[bytes]:
    """The records of a .wandb file: a 7-byte header (':W&B', magic, version), then LevelDB's log format (blocks of
    32 KiB; each fragment crc32c (4), length (2, little-endian), type (1: full, 2: first, 3: middle, 4: last))."""
    assert data[:4] == b":W&B"
    records, parts, pos = [], b"", 7
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a header is padding
            pos += block - pos % block
            continue
        length, kind = int.from_bytes(data[pos + 4 : pos + 6], "little"), data[pos + 6]
        payload, pos = data[pos + 7 : pos + 7 + length], pos + 7 + length
        if kind == 1:
            records.append(payload)
        elif kind in (2, 3):
            parts = (b"" if kind == 2 else parts) + payload
        elif kind == 4:
            records.append(parts + payload)
    return records


def wandb_history(folder: Path) -> list[dict[str, float]]:
    """The history rows of the offline W&B runs under ``folder``, read back from their .wandb files."""
    from wandb.proto import wandb_internal_pb2 as pb

    rows = []
    for path in sorted(folder.glob("wandb/offline-run-*/run-*.wandb")):
        for data in wandb_records(path.read_bytes()):
            rec = pb.Record()
            rec.ParseFromString(data)
            if rec.WhichOneof("record_type") == "history":
                rows.append({i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in rec.history.item})
    return rows


@pytest.mark.slow  # wandb takes 5 s to import and start a run: run by benchmarks/slow_tests.py
def test_train_logs_the_metrics_rows_to_an_offline_wandb_run(
    subset_labels: dict[str, Path], digits_subset: str, tmp_path: Path
) -> None:
    """W&B's history holds the rows of metrics.csv: the same epochs, losses, temperatures and final top-1."""
    pytest.importorskip("wandb")
    out = tmp_path / "run"
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    args = [
        "train",
        digits_subset,
        str(subset_labels["small"]),
        "--epochs",
        "2",
        "-q",
        "--wandb",
        "demo",
        "-o",
        str(out),
    ]
    run = subprocess.run([sys.executable, "-m", "lpq", *args], env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    with open(out / "metrics.csv", newline="") as f:
        table = list(csv.DictReader(f))
    history = wandb_history(out)
    assert [h["_step"] for h in history] == [int(r["epoch"]) for r in table] == [1, 2]
    for h, r in zip(history, table):
        for key in ("loss", "teacher_temp", "student_temp", "lr"):
            assert h[key] == pytest.approx(float(r[key]), rel=1e-5), key
    assert history[-1]["top1"] == pytest.approx(float(table[-1]["top1"]), rel=1e-5) and "top1" not in history[0]


def test_synth_writes_a_contact_sheet_and_sends_it_to_tensorboard(digits_teacher: Path, tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out, board = tmp_path / "syn", tmp_path / "tb"
    cli(
        "synth", "--teacher", digits_teacher, "--ipc", "3", "--iterations", "3", "-q", "-o", out, "--tensorboard", board
    )
    with Image.open(out / "grid.png") as im:
        assert im.size == (120 + 10 * 64, 10 * 64)  # the name column, then up to 10 tiles; a row per class
    events = EventAccumulator(str(board))
    events.Reload()
    assert events.Tags()["images"] == ["images"]
    assert [s for s, _ in scalars(board)["ce_loss"]] == list(range(10))  # a row per class (group)


def test_without_tensorboard_the_option_is_one_line(labels: dict[str, Path], tmp_path: Path, monkeypatch) -> None:
    import builtins

    real = builtins.__import__

    def without(name: str, *args: object, **kwargs: object) -> object:
        if name.startswith("torch.utils.tensorboard"):
            raise ImportError(name)
        return real(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(builtins, "__import__", without)
    args = ["train", "digits", str(labels["small"]), "--epochs", "1", "-o", str(tmp_path / "r")]
    result = runner.invoke(app, [*args, "--tensorboard", str(tmp_path / "tb")])
    assert result.exit_code == 2 and "lpq[tensorboard]" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_files_that_are_not_images_are_said_once(tmp_path: Path) -> None:
    for split in ("train", "test"):
        for c in ("a", "b"):
            folder = tmp_path / "data" / split / c
            folder.mkdir(parents=True)
            for i in range(4):
                Image.new("RGB", (8, 8), (60 * i, 0, 0)).save(folder / f"{i}.png")
    (tmp_path / "data" / "train" / "a" / "notes.txt").write_text("not an image")
    result = runner.invoke(
        app, ["squeeze", "--data", str(tmp_path / "data"), "--epochs", "1", "-o", str(tmp_path / "t")]
    )
    assert result.exit_code == 0, result.output
    said = [line for line in result.stderr.splitlines() if "not images" in line]
    assert len(said) == 1 and said[0].startswith("warning:") and "notes.txt" in said[0]


def test_compare_reports_dd_rankings_ior_and_hlr_where_the_baselines_ran(digits_teacher: Path, tmp_path: Path) -> None:
    """IOR: a run minus the random real subset's run with labels of the same kind and the same recipe (not one with
    another recipe); HLR: the architecture's full-data top-1 (the squeeze-trained teacher's, or --real-top1) minus
    the hard-label run on the same images. Hand-made run folders, hand-computed differences."""
    from lpql_factory import make_header, make_records, write_file

    from lpq.artifacts.teacher import load_teacher

    def image_set(name: str, init: str, iterations: int) -> Path:
        folder = tmp_path / name
        folder.mkdir()
        settings = {"init": init, "iterations": iterations}
        manifest = {"tool": "t", "teacher": str(digits_teacher), "teacher_sha256": "0" * 64, "settings": settings}
        (folder / "synth.json").write_text(json.dumps({**manifest, "class_names": [], "complete": True}))
        return folder

    def label_file(name: str, values: str) -> Path:
        header = make_header(values=values)
        return write_file(tmp_path / name, header, make_records(header, seed=0))

    def run(name: str, images: Path, labels: Path, top1: float, targets: str = "soft", epochs: int = 10) -> Path:
        folder = tmp_path / name
        folder.mkdir()
        config = {"images": str(images), "labels": str(labels), "targets": targets, "model": "convnet"}
        (folder / "config.json").write_text(json.dumps({**config, "epochs": epochs, "seed": 0, "output": name}))
        (folder / "result.json").write_text(json.dumps({"top1": top1, "label_bytes": labels.stat().st_size}))
        return folder

    syn, rdm = image_set("syn", "noise", 100), image_set("rdm", "real", 0)
    kind_a, kind_a_rdm, kind_b = (
        label_file("a.lpql", "f16"),
        label_file("a-rdm.lpql", "f16"),
        label_file("b.lpql", "f32"),
    )
    runs = [
        run("ours", syn, kind_a, 40.0),
        run("random-other-recipe", rdm, kind_a_rdm, 5.0, epochs=20),  # first: a match by labels alone would take it
        run("random", rdm, kind_a_rdm, 31.5),
        run("hard", syn, kind_a, 20.0, targets="hard"),
        run("other-labels", syn, kind_b, 35.0),
    ]
    rows = {Path(r["run"]).name: r for r in cli("compare", *runs)["rows"]}
    teacher = load_teacher(digits_teacher, need_stats=False).meta.test_top1
    assert rows["ours"]["ior"] == pytest.approx(8.5) and rows["ours"]["images"] == "synthetic"
    assert rows["other-labels"]["ior"] is None  # no random subset with f32 labels was run
    assert rows["random"]["ior"] is None and rows["random"]["images"] == "random real"
    assert rows["ours"]["hlr"] == pytest.approx(teacher - 20.0) and rows["hard"]["hlr"] == pytest.approx(teacher - 20)
    assert rows["random"]["hlr"] is None  # no hard-label run on the random subset
    given = {Path(r["run"]).name: r for r in cli("compare", *runs, "--real-top1", 90)["rows"]}
    assert given["ours"]["hlr"] == pytest.approx(70.0)
    table = runner.invoke(app, ["compare", *map(str, runs)])
    assert table.exit_code == 0 and "IOR" in table.stdout and "+8.50 pts" in table.stdout
