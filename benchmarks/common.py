"""Shared by the benchmark scripts: where ../shared/data's data sets are extracted and where results go."""

from __future__ import annotations

import json
import math
import platform
import statistics
import tarfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "out"  # large, regenerable outputs (ignored by git)
RESULTS = ROOT / "benchmarks" / "results"  # the small JSON and PNG results the report shows (committed)
TEACHER = OUT / "accuracy" / "cifar10" / "teacher.lpqt"  # made by benchmarks/accuracy.py --dataset cifar10


def _extracted(archive: str, folder: str) -> Path:
    """``folder`` of a ../shared/data archive, extracted once into benchmarks/out/cache (ignored by git)."""
    cache = OUT / "cache"
    if not (cache / folder / "test").is_dir():
        cache.mkdir(parents=True, exist_ok=True)
        with tarfile.open(ROOT.parent / "shared" / "data" / archive) as tar:
            tar.extractall(cache, filter="data")
    return cache / folder


def cifar_folder() -> Path:
    """../shared/data's CIFAR-10 JPEGs."""
    return _extracted("cifar10-jpeg.tar.gz", "cifar10")


def tiny_jpeg_folder() -> Path:
    """../shared/data's Tiny-ImageNet-200 as released: 64 px JPEGs (some grayscale)."""
    return _extracted("tiny-imagenet-200-jpg.tar.gz", "tiny-imagenet-200")


def tiny_folder(size: int = 32) -> Path:
    """../shared/data's Tiny-ImageNet-200 (64 px JPEGs) as an ImageFolder of ``size`` px PNGs, made once.

    Downsampled with PIL's antialiased bilinear filter (as the ImageNet 32x32 variants are), grayscale
    images converted to RGB; PNG keeps the downsampled pixels exact. 32 px makes a ConvNet epoch over the
    100,000 training images about 5 minutes on our 2-core CPU instead of 22 at 64 px.
    """
    from concurrent.futures import ProcessPoolExecutor

    folder = OUT / "cache" / f"tiny-imagenet-200-{size}px"
    if (folder / ".complete").exists():
        return folder
    source = tiny_jpeg_folder()
    files = sorted(source.glob("*/*/*.jpg"))
    jobs = [(f, folder / f.relative_to(source).with_suffix(".png"), size) for f in files]
    with ProcessPoolExecutor(2) as pool:
        list(pool.map(_downsample, jobs, chunksize=512))
    (folder / ".complete").touch()
    return folder


def _downsample(job: tuple[Path, Path, int]) -> None:
    from PIL import Image

    src, dst, size = job
    dst.parent.mkdir(parents=True, exist_ok=True)
    with Image.open(src) as im:
        im.convert("RGB").resize((size, size), Image.BILINEAR).save(dst)


def distilled_folder(count: int, size: int = 224, classes: int = 1000) -> Path:
    """``count`` smooth PNGs in ``classes`` folders: the shape of a distilled ImageNet set (content irrelevant)."""
    import numpy as np
    from PIL import Image

    folder = OUT / "distilled" / f"distilled-{count}-{size}px"
    if (folder / ".complete").exists():
        return folder
    rng = np.random.default_rng(count)
    for i in range(count):
        out = folder / f"n{i % classes:08d}" / f"{i // classes:05d}.png"
        out.parent.mkdir(parents=True, exist_ok=True)
        coarse = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
        Image.fromarray(coarse).resize((size, size), Image.BICUBIC).save(out)
    (folder / ".complete").touch()
    return folder


def stand_in_torch_home(classes: int = 1000) -> Path:
    """A TORCH_HOME holding a stand-in for torchvision's resnet18.IMAGENET1K_V1: random weights under the file
    name torchvision expects, so `--weights torchvision:resnet18.IMAGENET1K_V1` runs offline (the accuracy
    of these weights does not matter to the speed and memory measured with them)."""
    from lpq.models import build_model

    home = OUT / "torch-home"
    file = home / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    if not file.exists():
        file.parent.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(0)
        torch.save(build_model("resnet18", classes, 224).state_dict(), file)
    return home


def peak_rss(cmd: list[str], env: dict[str, str] | None = None) -> tuple[str, float]:
    """Run a command; its stdout and the peak resident memory (MiB) of the largest process of its tree."""
    import subprocess
    import sys

    probe = (
        "import json, resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); "
        "print(json.dumps(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)); sys.exit(r.returncode)"
    )
    run = subprocess.run([sys.executable, "-c", probe, *cmd], capture_output=True, text=True, env=env, check=False)
    if run.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed: {run.stderr[-3000:]}")
    *out, rss = run.stdout.strip().splitlines()
    return "\n".join(out), float(rss) / 1024.0


def environment() -> dict[str, object]:
    """The software and load a result was measured with (other jobs on the 2 cores slow absolute rates)."""
    import os

    return {
        "load_average_1m": os.getloadavg()[0],
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def write_result(name: str, data: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({"env": environment(), **data}, indent=2, default=str))
    return path


def rounds(
    runs: dict[str, Callable[[], object]], repeats: int, clock: Callable[[], float] = time.perf_counter
) -> dict[str, list[float]]:
    """Seconds (of ``clock``) of each run in each of ``repeats`` rounds, after one warm-up of each. Every round
    runs each once, in an order drawn afresh (seeded), so that a slow spell of a noisy machine lands on all of
    them and no run always follows the same other one: a run right after a heavy one pays for the caches and
    allocator state that one leaves (measured: ~12 us of ~180 per MR-100 batch in benchmarks/storage.py)."""
    for fn in runs.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in runs}
    order = np.random.default_rng(0)
    for _ in range(repeats):
        for name in order.permutation(list(runs)):
            t0 = clock()
            runs[name]()
            times[name].append(clock() - t0)
    return times


def alternate(runs: dict[str, Callable[[], object]], repeats: int = 3) -> dict[str, float]:
    """Median seconds of each run over ``repeats`` rounds (see `rounds`)."""
    return {name: statistics.median(t) for name, t in rounds(runs, repeats).items()}


# Markdown pieces every benchmark's RESULTS.md section is written with.


def section(title: str, cmd: str) -> list[str]:
    """A section's heading and the command that produced its figures."""
    return [f"## {title}", "", "```", cmd, "```", ""]


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def pm(mean: float, sd: float) -> str:
    return f"{mean:.2f} +- {sd:.2f}%"


def size(n: float) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n:.0f} B"


def load(name: str) -> dict | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def load_note(d: dict) -> str:
    """How busy the machine was when the result was taken (other jobs slow absolute rates, not ratios)."""
    env = d.get("environment") or d.get("env") or {}
    load = env.get("load_average_1m")
    return "" if load is None else f" (1-minute load average {load:.1f} on the 2 cores when it finished)"


def versus(a: dict, b: dict) -> tuple[float, float, int]:
    """Top-1 of a minus b, the seeds' combined spread, and the sign of the gap where it exceeds that spread."""
    gap, spread = a["top1_mean"] - b["top1_mean"], math.hypot(a["top1_sd"], b["top1_sd"])
    return gap, spread, (gap > spread) - (gap < -spread)
