"""The run record squeeze, synth and train share (lpq.artifacts.run): one rule for fresh runs, --resume, locks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import BaseModel

from lpq.artifacts.run import LOCK, RunRecord
from lpq.errors import LpqError


class Row(BaseModel):
    epoch: int
    loss: float
    top1: float | None = None
    classes: list[int] = []


@pytest.mark.parametrize("beside", [False, True], ids=["folder", "beside a file"])
def test_fresh_resume_and_takeover_follow_one_rule(tmp_path: Path, beside: bool) -> None:
    record = RunRecord.beside(tmp_path / "t.lpqt") if beside else RunRecord(tmp_path / "run")
    a, b = {"lr": 0.1}, {"lr": 0.2}
    record.check(a, resume=True)  # --resume where nothing is: a fresh start (rerunning a command finishes a job)
    record.log.parent.mkdir(parents=True, exist_ok=True)
    record.log.write_text("took over the lock of pid 1, which is no longer running\n")
    record.check(a, resume=True)  # killed after its lock's log line, before it recorded its settings: the same
    record.start(a)
    record.append(Row(epoch=1, loss=2.0))
    record.check(b, resume=False)  # only the record's own files: no progress saved, a fresh run takes over
    record.file("state.pt").write_bytes(b"progress")
    with pytest.raises(LpqError) as e:
        record.check(a, resume=False)
    assert e.value.ref == "run-exists" and "--resume" in str(e.value)
    with pytest.raises(LpqError) as e:
        record.check(b, resume=True)
    assert e.value.ref == "resume-mismatch"
    record.check(a, resume=True)
    names = sorted(p.name for p in tmp_path.rglob("*") if p.is_file())
    prefix = "t.lpqt." if beside else ""
    assert names == sorted(
        f"{prefix}{n}" for n in ("config.json", "log.txt", "metrics.jsonl", "metrics.csv", "state.pt")
    )


def test_metrics_rows_and_csv_agree_and_trim(tmp_path: Path) -> None:
    record = RunRecord(tmp_path)
    for epoch in (1, 2, 3):
        record.append(Row(epoch=epoch, loss=1 / epoch, top1=50.0 if epoch == 3 else None, classes=[epoch, 9]))
    assert [r.epoch for r in record.rows(Row)] == [1, 2, 3]
    lines = (tmp_path / "metrics.csv").read_text().splitlines()
    assert lines == ["epoch,loss,top1,classes", "1,1,,1 9", "2,0.5,,2 9", "3,0.333333,50,3 9"]
    record.write_rows([r for r in record.rows(Row) if r.epoch <= 1])  # a resume from epoch 1's checkpoint
    assert (tmp_path / "metrics.csv").read_text().splitlines() == lines[:2]
    (tmp_path / "metrics.jsonl").write_text("not json\n")
    with pytest.raises(LpqError) as e:
        record.rows(Row)
    assert e.value.ref == "run-corrupt"


@pytest.mark.parametrize(
    ("command", "record"),
    [
        (["squeeze", "--data", "digits", "--epochs", "1", "-o", "{tmp}/t.lpqt"], "t.lpqt"),
        (["synth", "--teacher", "{teacher}", "--iterations", "2", "-o", "{tmp}/syn"], "syn"),
    ],
    ids=["squeeze", "synth"],
)
def test_a_run_in_use_is_refused_by_a_second_process(
    command: list[str], record: str, digits_teacher: Path, tmp_path: Path
) -> None:
    args = [a.format(tmp=tmp_path, teacher=digits_teacher) for a in command]
    held = RunRecord.beside(tmp_path / record) if record.endswith(".lpqt") else RunRecord(tmp_path / record)
    with held.lock():  # as a live run of the same output would
        run = subprocess.run([sys.executable, "-m", "lpq", *args], capture_output=True, text=True)
    assert run.returncode == 2 and "run-busy" in run.stderr and f"pid {os.getpid()}" in run.stderr, run.stderr
    assert len(run.stderr.strip().splitlines()) == 1
    assert not (tmp_path / LOCK).exists() and not list(tmp_path.glob(".*lock"))
