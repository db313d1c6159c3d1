"""How many CPU threads a command computes with, chosen before torch starts its thread pool (no torch import here).

Clusters run several jobs per node, and laptops run a demo beside an editor: a process that takes every core and
spins its idle OpenMP threads starves the others (two `lpq demo` at once on 2 cores took 3.7x their sequential
time). So a command computes with the CPUs it may use (affinity, cgroup quota) that other work leaves free, and
its idle threads sleep (``OMP_WAIT_POLICY=PASSIVE``); ``lpq --threads N`` or ``OMP_NUM_THREADS`` fix the count, a
set ``OMP_WAIT_POLICY`` is kept. benchmarks/threads.py measures both choices side by side.
"""

from __future__ import annotations

import math
import os
import sys
import time
from pathlib import Path

CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")  # cgroup v2: "QUOTA PERIOD" (or "max PERIOD") in microseconds
PROC_STAT = Path("/proc/stat")
BUSY_SAMPLE_SECONDS = 0.1  # how long a command watches its CPUs before choosing its threads


def usable_cpus() -> int:
    """The CPUs this process may run on: its affinity mask (taskset, Slurm's cpuset), capped by a cgroup CPU quota
    (a container's or a job's CPU limit), at least 1."""
    n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    try:
        quota, period = CGROUP_CPU_MAX.read_text().split()[:2]
        if quota != "max":
            n = min(n, math.ceil(int(quota) / int(period)))
    except (OSError, ValueError):
        pass  # no cgroup v2 quota here
    return max(1, n)


def busy_cpus(seconds: float = BUSY_SAMPLE_SECONDS) -> float:
    """How many of this process's CPUs other work keeps busy now: their non-idle share over ``seconds`` from
    /proc/stat (Linux; 0 elsewhere). Measured, not the load average, which lags a minute behind a job that ended."""
    mine = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set()

    def ticks() -> dict[int, tuple[int, int]]:
        out = {}
        for line in PROC_STAT.read_text().splitlines():
            name, *fields = line.split()
            if name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in mine:
                v = [int(f) for f in fields[:8]]  # user nice system idle iowait irq softirq steal
                out[int(name[3:])] = (sum(v), v[3] + v[4])
        return out

    try:
        before = ticks()
        time.sleep(seconds)
        after = ticks()
    except (OSError, ValueError):
        return 0.0
    busy = 0.0
    for cpu, (total, idle) in after.items():
        spent = total - before[cpu][0]
        busy += (spent - (idle - before[cpu][1])) / spent if spent > 0 else 0.0
    return busy


def compute_threads(threads: int | None = None) -> int:
    """``threads`` (--threads), else OMP_NUM_THREADS, else the usable CPUs that other work leaves free, at least 1."""
    if threads is not None:
        return threads
    if os.environ.get("OMP_NUM_THREADS", "").isdigit():
        return max(1, int(os.environ["OMP_NUM_THREADS"]))
    usable = usable_cpus()
    return max(1, min(usable, round(usable - busy_cpus())))


def configure_threads(threads: int | None = None) -> int:
    """Set this process's compute threads and wait policy through the environment, which torch reads when it is
    imported (and DataLoader workers and child processes inherit); a torch already imported is set directly."""
    n = compute_threads(threads)
    os.environ["OMP_NUM_THREADS"] = str(n)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(n)
    return n
