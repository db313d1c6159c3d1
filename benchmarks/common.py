"""Shared by the benchmark scripts: where ../shared/data's CIFAR-10 is extracted and where results go."""

from __future__ import annotations

import json
import platform
import statistics
import tarfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "out"  # large, regenerable outputs (ignored by git)
RESULTS = ROOT / "benchmarks" / "results"  # the small JSON and PNG results the report shows (committed)
TEACHER = OUT / "cifar10-convnet.lpqt"


def cifar_folder() -> Path:
    """../shared/data's CIFAR-10 JPEGs, extracted once into benchmarks/out/cache (ignored by git)."""
    cache = OUT / "cache"
    folder = cache / "cifar10"
    if not (folder / "test").is_dir():
        cache.mkdir(parents=True, exist_ok=True)
        with tarfile.open(ROOT.parent / "shared" / "data" / "cifar10-jpeg.tar.gz") as tar:
            tar.extractall(cache, filter="data")
    return folder


def environment() -> dict[str, object]:
    return {"torch": torch.__version__, "threads": torch.get_num_threads(), "machine": platform.machine(),
            "processor": platform.processor() or platform.machine(), "python": platform.python_version()}


def write_result(name: str, data: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({"env": environment(), **data}, indent=2, default=str))
    return path


def alternate(runs: dict[str, Callable[[], object]], repeats: int = 3) -> dict[str, float]:
    """Median seconds of each run, timed in alternation after one warm-up of each (noisy machines)."""
    for fn in runs.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, fn in runs.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(t) for name, t in times.items()}
