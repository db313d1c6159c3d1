"""What caches that cannot lie cost (issue 38, items 1 and 2), side by side in one run on the 2-core CPU.

A pixel cache checks each image it serves against its CRC-32 and recomputes its content fingerprint when
opened; a shard index carries a digest and each image read from a shard brings its tar header along to be
checked. Against the same loops with the previous, unchecked reads patched back in, in CPU seconds (the
process and its DataLoader workers, one compute thread; the least of alternating rounds, see `fastest`), as
rates of work per CPU second:

- relabel: images/s of relabel's loop (render in a worker, teacher, quantize, encode, write), a stand-in
  ResNet-18 teacher at 224 px on a distilled set of 1,000 images replayed from its pixel cache;
- train: steps/s of training's epoch loop, a ConvNet student at 32 px on those 224 px labels (`--input-size
  32`: the cheapest step per image served, where a check weighs most);
- loader: stored batches/s of training's data pipeline alone in the main process (nothing else to hide it);
- shards: images/s decoded from a webdataset shard of the same 1,000 images as JPEG;
- open: CPU seconds an open of a current cache spends re-reading its pixels, against one relabel epoch.

Claim: every checked rate >= 0.95x the unchecked one.

    python benchmarks/caches.py            # about 10 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import io
import os
import resource
import tarfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from common import OUT, distilled_folder, load, rounds, section, stand_in_torch_home, table, write_result
from throughput import BATCH, RelabelLoop, labels_for
from torch.utils.data import DataLoader

from lpq.data.shards import ShardRecords
from lpq.data.sources import CachedImages

COUNT = 1000


def unchecked_load(self: CachedImages, index: int) -> torch.Tensor:
    """CachedImages.load before issue 38: no checksum."""
    if self._fd is None or self._pid != os.getpid():
        self._fd = os.open(self.cache / "pixels.u8", os.O_RDONLY)
        self._pid = os.getpid()
    h, w = (int(v) for v in self._sizes[index])
    raw = os.pread(self._fd, 3 * h * w, int(self._offsets[index]))
    return torch.frombuffer(bytearray(raw), dtype=torch.uint8).view(3, h, w)


def unchecked_read(self: ShardRecords, index: int) -> bytes:
    """ShardRecords.read before issue 38: the image's bytes only."""
    shard, offset, size = (int(v) for v in self.at[index])
    if self._pid != os.getpid():
        self._files, self._pid = {}, os.getpid()
    f = self._files.get(shard)
    if f is None:
        f = self._files[shard] = open(self.shards[shard], "rb")  # noqa: SIM115
    return os.pread(f.fileno(), size, offset)  # type: ignore[attr-defined]


@contextmanager
def unchecked() -> Iterator[None]:
    """The previous reads, for the runs compared against (DataLoader workers fork inside, and inherit them)."""
    load_, read = CachedImages.load, ShardRecords.read
    CachedImages.load, ShardRecords.read = unchecked_load, unchecked_read  # type: ignore[method-assign]
    try:
        yield
    finally:
        CachedImages.load, ShardRecords.read = load_, read  # type: ignore[method-assign]


def cpu_seconds() -> float:
    """CPU seconds of this process and of its children that have ended (DataLoader workers, once joined)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def fastest(run: Callable[[], object], repeats: int) -> dict[str, float]:
    """CPU seconds of ``run`` checked and unchecked, its workers included: the least of ``repeats`` alternating
    rounds, each in a fresh order. CPU time, not wall time: on a shared 2-core machine wall-clock ratios of the
    same code moved by 10-15% between runs, and what a check costs is CPU (one compute thread, so no idle
    spinning is counted)."""

    def before() -> None:
        with unchecked():
            run()

    times = rounds({"checked": run, "unchecked": before}, repeats, clock=cpu_seconds)
    return {name: min(t) for name, t in times.items()}


def relabel_rates(folder: Path, batches: int) -> dict[str, float]:
    from lpq.stages.relabel import label_part, renderer

    loop = RelabelLoop.of(folder, batches)
    header, images, labeller, ids = loop.header, loop.images, loop.labeller, loop.ids
    out = OUT / "caches" / "relabel-timing.lpql"
    out.parent.mkdir(parents=True, exist_ok=True)

    def run() -> None:
        for p in (out, out.with_name(out.name + ".partial")):
            p.unlink(missing_ok=True)
        label_part(
            header, renderer(header, images, 1, torch.device("cpu")), labeller, ids, out, resume=False, show=False
        )

    times = fastest(run, repeats=5)
    return {f"relabel_{k}_images_per_s": batches * BATCH / t for k, t in times.items()}


def train_rates(folder: Path, labels: Path, steps: int) -> dict[str, float]:
    from lpq.configs.train import TrainConfig
    from lpq.data import open_images
    from lpq.format import LpqlReader, StudentTemp
    from lpq.method.batches import BatchDraw, StoredBatches
    from lpq.method.loss import StudentTemperature
    from lpq.runtime import Precision
    from lpq.stages.train import Student, train_epoch

    with LpqlReader(labels) as r:
        header = r.header
    images = open_images(str(folder))
    cfg = TrainConfig(images=str(folder), labels=labels, model="convnet", input_size=32, epochs=1, calibrate=False)
    cfg = cfg.plan(None, StudentTemp())
    student = Student.build(cfg, header, Precision.choose("none", torch.device("cpu")), 1, steps)
    data = StoredBatches(labels, images, 32)
    draw = BatchDraw.of(header, epochs=range(0, 1))

    def run() -> None:
        batches = iter(DataLoader(data, sampler=draw, batch_size=None, num_workers=1, prefetch_factor=4))
        train_epoch(
            student, batches, steps, header, cfg, 4.0, StudentTemperature(1.0), images.labels, lambda _info: None
        )

    def loader() -> None:
        batches = iter(DataLoader(data, sampler=draw, batch_size=None, num_workers=0))
        for _ in range(steps):
            next(batches)

    train = fastest(run, repeats=9)
    feed = fastest(loader, repeats=15)  # cheap, and the most exposed to a noisy machine
    return {
        **{f"train_{k}_steps_per_s": steps / t for k, t in train.items()},
        **{f"loader_{k}_batches_per_s": steps / t for k, t in feed.items()},
    }


def shard_of(folder: Path) -> Path:
    """The distilled set as one webdataset shard of JPEGs (labels: class folder order)."""
    from PIL import Image

    shard = OUT / "caches" / "shards" / "train-0.tar"
    if shard.exists():
        return shard
    shard.parent.mkdir(parents=True, exist_ok=True)
    tmp = shard.with_suffix(".partial")
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir())
    with tarfile.open(tmp, "w") as tar:
        for n, path in enumerate(sorted(folder.glob("*/*.png"))):
            buf = io.BytesIO()
            Image.open(path).convert("RGB").save(buf, format="JPEG", quality=90)
            for ext, data in (("jpg", buf.getvalue()), ("cls", str(classes.index(path.parent.name)).encode())):
                info = tarfile.TarInfo(f"{n:06d}.{ext}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    tmp.rename(shard)
    return shard


def shard_rates(shard: Path) -> dict[str, float]:
    from lpq.data.shards import open_shards

    source = open_shards(str(shard))

    def run() -> None:
        for i in range(len(source)):
            source.load(i)

    return {f"shards_{k}_images_per_s": len(source) / t for k, t in fastest(run, repeats=7).items()}


def open_seconds(folder: Path) -> float:
    """CPU seconds an open of a current cache takes: the file list, its digest, the pixels re-read against the
    fingerprint."""
    from lpq.data import open_images

    open_images(str(folder))  # built, if it was not
    t0 = cpu_seconds()
    open_images(str(folder))
    return cpu_seconds() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batches", type=int, default=8, help="batches timed per rate")
    args = ap.parse_args()
    os.environ["TORCH_HOME"] = str(stand_in_torch_home())
    torch.set_num_threads(1)
    folder = distilled_folder(COUNT)
    labels = labels_for(folder, COUNT, ratio=1.0)
    doc: dict[str, float] = {"images": COUNT, "open_s": open_seconds(folder)}
    doc.update(relabel_rates(folder, args.batches))
    doc.update(train_rates(folder, labels, 4 * args.batches))
    doc.update(shard_rates(shard_of(folder)))
    doc["relabel_epoch_s"] = COUNT / doc["relabel_checked_images_per_s"]
    for key, value in doc.items():
        print(f"{key}: {value:.4g}", flush=True)
    write_result("caches", doc)


# RESULTS.md: this benchmark's section, rendered from its JSON (benchmarks/run_all.py --render).

ROWS = [  # (what, JSON stem, unit)
    ("relabel (224 px teacher, one worker)", "relabel_{}_images_per_s", "images/CPU s"),
    ("train (32 px student on 224 px labels, one worker)", "train_{}_steps_per_s", "steps/CPU s"),
    ("training's data pipeline alone (main process)", "loader_{}_batches_per_s", "batches/CPU s"),
    ("images decoded from a webdataset shard", "shards_{}_images_per_s", "images/CPU s"),
]


def rate(v: float) -> str:
    return f"{v:,.0f}" if v >= 100 else f"{v:.3g}"


def results_section(cmd: str) -> list[str]:
    d = load("caches")
    if not d:
        return []
    rows, ratios = [], []
    for what, stem, unit in ROWS:
        checked, before = d[stem.format("checked")], d[stem.format("unchecked")]
        rows.append([what, f"{rate(before)} {unit}", f"{rate(checked)} {unit}", f"x{checked / before:.3f}"])
        ratios.append(checked / before)
    return [
        *section("Caches that cannot lie: what the checks cost", cmd),
        f"Distilled set of {d['images']:,} images at 224 px, replayed from its pixel cache (each image served is "
        "checked against its CRC-32) and read from a webdataset shard (each image read brings its tar header "
        "along); the previous, unchecked reads patched back in for the comparison. Rates per CPU second (process and "
        "DataLoader workers, one compute thread), the least CPU time of alternating rounds: wall-clock ratios of "
        "the same code moved by 10-15% between runs on this shared machine.",
        "",
        table(["loop", "unchecked (before)", "checked", "ratio"], rows),
        "",
        f"Opening a current cache re-reads its pixels against its fingerprint: {d['open_s']:.2f} CPU s, "
        f"{100 * d['open_s'] / d['relabel_epoch_s']:.1f}% of one relabel epoch of the set "
        f"({d['relabel_epoch_s']:.0f} CPU s). Claim: every checked rate at least x0.95 of the unchecked one "
        f"({'holds' if min(ratios) >= 0.95 else 'does not hold'}: lowest x{min(ratios):.3f}). A ratio above 1 is "
        "the measurement's noise: the checked code does more work, not less.",
        "",
    ]


if __name__ == "__main__":
    main()
