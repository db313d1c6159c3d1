"""How many threads a command computes with: the CPUs it may use that other work leaves free (lpq.cpus)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lpq import cpus


class Readings:
    """A /proc/stat that reads differently each time, as the kernel's counters move."""

    def __init__(self, *texts: str) -> None:
        self.texts = list(texts)

    def read_text(self) -> str:
        return self.texts.pop(0)


def stat(*cpu_ticks: tuple[int, int]) -> str:
    """/proc/stat lines for cpus 0.. with (busy user ticks, idle ticks) each."""
    lines = ["cpu  0 0 0 0 0 0 0 0 0 0"]
    lines += [f"cpu{i} {busy} 0 0 {idle} 0 0 0 0 0 0" for i, (busy, idle) in enumerate(cpu_ticks)]
    return "\n".join([*lines, "intr 1 2 3", ""])


def test_other_work_on_our_cpus_leaves_fewer_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    """By hand: cpu0 busy 10 of 10 ticks, cpu1 5 of 10: 1.5 CPUs busy; 2 usable -> round(0.5) -> at least 1."""
    monkeypatch.setattr(cpus.os, "sched_getaffinity", lambda _pid: {0, 1})
    monkeypatch.setattr(cpus, "CGROUP_CPU_MAX", Path("/nonexistent"))
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(cpus, "PROC_STAT", Readings(stat((100, 50), (100, 50)), stat((110, 50), (105, 55))))
    assert cpus.busy_cpus(0.0) == pytest.approx(1.5)
    monkeypatch.setattr(cpus, "PROC_STAT", Readings(stat((100, 50), (100, 50)), stat((110, 50), (105, 55))))
    assert cpus.compute_threads() == 1
    monkeypatch.setattr(cpus, "PROC_STAT", Readings(stat((0, 0), (0, 0)), stat((0, 10), (1, 9))))
    assert cpus.compute_threads() == 2  # 0.1 CPU busy: both are free
    assert cpus.compute_threads(3) == 3  # --threads wins
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert cpus.compute_threads() == 1


def test_a_cgroup_quota_caps_the_usable_cpus(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    quota = tmp_path / "cpu.max"
    monkeypatch.setattr(cpus, "CGROUP_CPU_MAX", quota)
    monkeypatch.setattr(cpus.os, "sched_getaffinity", lambda _pid: set(range(8)))
    quota.write_text("150000 100000\n")  # 1.5 CPUs -> 2
    assert cpus.usable_cpus() == 2
    quota.write_text("max 100000\n")
    assert cpus.usable_cpus() == 8


def test_configure_threads_sets_the_environment_and_keeps_a_users_wait_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    before = torch.get_num_threads()
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)  # both restored as they were after the test
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    try:
        assert cpus.configure_threads(1) == 1
        assert os.environ["OMP_NUM_THREADS"] == "1" and os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
        assert torch.get_num_threads() == 1
        monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
        cpus.configure_threads(1)
        assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE"
    finally:
        torch.set_num_threads(before)
