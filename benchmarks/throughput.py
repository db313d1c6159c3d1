"""Keeping a GPU fed at ImageNet shape, measured on this CPU, and what a full ImageNet-1K run costs.

Claims (issue: ImageNet scale, part 2), ResNet-18 teacher and student at 224 px, batch 32, side by side in
one run on the 2-core CPU (median of alternating timed runs where two rates are compared):

- loader: stored batches/s that `lpq train`'s data pipeline (read + decode labels, render 32 crops of the
  distilled images from the pixel cache, normalize) delivers with 0, 1 and 2 workers is at least 5x the
  student's forward+backward rate on the same batches; from the one-worker rate, the workers a 30 ms GPU
  step would need;
- relabel: images/s of relabel's loop (render in a worker, teacher, quantize, encode, write) >= 0.9x the
  teacher's plain forward on the same batches;
- train from .lpql: steps/s of training's epoch loop >= 0.9x plain forward+backward on in-memory tensors;
- synthesis: a step >= 0.8x the teacher's plain forward+backward on the same batch;
- memory: peak RSS of `lpq train` on distilled sets of 1,000 and 10,000 images at 224 px, ratio <= 1.2.

Then a projection for ImageNet-1K at IPC 10 and 50 with the authors' settings (4,000 synthesis iterations
per class, 300 relabel epochs, 300 student epochs): FLOPs counted from the model (FlopCounterMode) per
stage, and GPU-hours on one H100 at a stated 40% of its dense bf16 peak (989 TFLOP/s), with full and
pruned (x10, x40) relabelling. No GPU was available for these measurements: the fraction is assumed.
The teacher's weights are a random stand-in (speed and memory do not depend on them).

    python benchmarks/throughput.py            # about 30 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from common import (
    OUT,
    RESULTS,
    alternate,
    distilled_folder,
    environment,
    load,
    peak_rss,
    section,
    stand_in_torch_home,
    table,
    write_result,
)
from torch.utils.data import DataLoader

if TYPE_CHECKING:
    from lpq.artifacts.teacher import Teacher
    from lpq.data import ImageSource
    from lpq.format import Header
    from lpq.stages.relabel import Labeller

SIZE, BATCH, CLASSES = 224, 32, 1000
TEACHER = "torchvision:resnet18.IMAGENET1K_V1"
H100_BF16 = 989.4e12  # dense bf16 FLOP/s of an H100 SXM
ASSUMED_FRACTION = 0.4


def labels_for(folder: Path, count: int, ratio: float) -> Path:
    """One relabel epoch of the set, pruned to ``ratio``, top-100 8-bit labels."""
    from lpq.configs.relabel import RelabelConfig
    from lpq.stages.relabel import relabel

    out = folder.with_name(f"{folder.name}-x{ratio:g}.lpql")
    if not out.exists():
        relabel(
            RelabelConfig(
                images=str(folder),
                teacher=TEACHER,
                output=out,
                epochs=1,
                batch_size=BATCH,
                ratio=ratio,
                top_k=100,
                values="i8",
                device="cpu",
            )
        )
    return out


def loader_rates(folder: Path, labels: Path, batches: int) -> dict[str, float]:
    """Stored batches/s from training's data pipeline with 0, 1, 2 workers."""
    from lpq.data import open_images
    from lpq.method.batches import BatchDraw, StoredBatches

    images = open_images(str(folder))
    rates = {}
    for workers in (0, 1, 2):
        data = StoredBatches(labels, images)
        draw = BatchDraw.of(data.header, epochs=range(0, 2))
        loader = DataLoader(
            data, sampler=draw, batch_size=None, num_workers=workers, prefetch_factor=4 if workers else None
        )
        it = iter(loader)
        next(it)  # workers started and warm
        t0 = time.perf_counter()
        for _ in range(batches):
            next(it)
        rates[f"loader_{workers}w_batches_per_s"] = batches / (time.perf_counter() - t0)
    return rates


def train_vs_plain(folder: Path, labels: Path, steps: int) -> dict[str, float]:
    """Training's epoch loop (targets from .lpql, replay in a worker) against plain steps on in-memory tensors."""
    from lpq.configs.train import TrainConfig
    from lpq.data import open_images
    from lpq.format import LpqlReader, StudentTemp
    from lpq.method.batches import BatchDraw, StoredBatches
    from lpq.method.loss import StudentTemperature
    from lpq.runtime import Precision
    from lpq.stages.train import Student, make_targets, train_epoch

    with LpqlReader(labels) as r:
        header = r.header
    images = open_images(str(folder))
    cfg = TrainConfig(images=str(folder), labels=labels, model="resnet18", epochs=1, calibrate=False)
    cfg = cfg.plan(None, StudentTemp())
    cpu = Precision.choose("none", torch.device("cpu"))
    student = Student.build(cfg, header, cpu, 1, steps)
    data = StoredBatches(labels, images)
    draw = BatchDraw.of(header, epochs=range(0, 4))
    held = [data[key] for key in list(draw)[:steps]]
    inputs = [b.inputs for b in held]
    targets = [make_targets(b, header, "soft", 4.0, images.labels) for b in held]
    loader = iter(DataLoader(data, sampler=draw, batch_size=None, num_workers=1, prefetch_factor=4))
    next(loader)

    def ours() -> None:
        train_epoch(
            student, loader, steps, header, cfg, 4.0, StudentTemperature(1.0), images.labels, lambda _info: None
        )

    def plain() -> None:
        net, opt = student.model, student.opt
        for x, t in zip(inputs, targets):
            loss = F.kl_div(F.log_softmax(net(x), 1), t, reduction="batchmean")
            opt.zero_grad()
            loss.backward()
            opt.step()

    times = alternate({"train": ours, "plain": plain}, repeats=2)
    return {
        "train_steps_per_s": steps / times["train"],
        "plain_steps_per_s": steps / times["plain"],
        "train_ratio": times["plain"] / times["train"],
    }


@dataclass(frozen=True)
class RelabelLoop:
    """What relabel's loop needs for ``batches`` kept batches of a distilled set: top-100 8-bit labels from the
    stand-in teacher on the CPU."""

    images: ImageSource
    header: Header
    labeller: Labeller
    teacher: Teacher
    ids: list[int]

    @classmethod
    def of(cls, folder: Path, batches: int) -> RelabelLoop:
        from lpq.artifacts.teacher import load_teacher
        from lpq.configs.relabel import RelabelConfig
        from lpq.data import open_images
        from lpq.runtime import Precision
        from lpq.stages.relabel import Labeller, build_header

        images = open_images(str(folder))
        teacher = load_teacher(TEACHER, need_stats=False, classes=images.classes)
        cfg = RelabelConfig(images=str(folder), teacher=TEACHER, epochs=1, batch_size=BATCH, top_k=100, values="i8")
        cpu = Precision.choose("none", torch.device("cpu"))
        header = build_header(cfg, teacher, images, cpu.name)
        return cls(images, header, Labeller(header, teacher, cpu), teacher, header.prune.kept[:batches])


def relabel_vs_forward(folder: Path, batches: int) -> dict[str, float]:
    """Relabel's loop on ``batches`` kept batches against the teacher's plain forward on the same inputs."""
    from lpq.stages.relabel import label_part, renderer

    loop = RelabelLoop.of(folder, batches)
    header, images, labeller, teacher, ids = loop.header, loop.images, loop.labeller, loop.teacher, loop.ids
    render_ids = renderer(header, images, 1, torch.device("cpu"))
    prepared = [item.inputs for item in render_ids(ids)]
    out = OUT / "throughput" / "relabel-timing.lpql"
    out.parent.mkdir(parents=True, exist_ok=True)

    def ours() -> None:
        for p in (out, out.with_name(out.name + ".partial")):
            p.unlink(missing_ok=True)
        label_part(header, render_ids, labeller, ids, out, resume=False, show=False)

    @torch.no_grad()
    def plain() -> None:
        for x in prepared:
            teacher.model(x)

    times = alternate({"relabel": ours, "forward": plain}, repeats=3)
    n = batches * BATCH
    return {
        "relabel_images_per_s": n / times["relabel"],
        "forward_images_per_s": n / times["forward"],
        "relabel_ratio": times["forward"] / times["relabel"],
    }


def synth_vs_plain(ipc: int, steps: int) -> dict[str, float]:
    """A synthesis step (BN hooks, moments, augmentation, Adam, clamp) against plain forward+backward."""
    from lpq.artifacts.teacher import ClassStats, Teacher, TeacherMeta
    from lpq.configs.synth import SynthConfig
    from lpq.method.synthesis import optimize_images
    from lpq.models import bn_layers, build_model
    from lpq.runtime import Precision
    from lpq.stages.synth import synthesis_steps

    net = build_model("resnet18", CLASSES, SIZE).eval()
    for p in net.parameters():
        p.requires_grad_(False)
    layers = bn_layers(net)
    meta = TeacherMeta(
        architecture="resnet18",
        num_classes=CLASSES,
        class_names=[str(i) for i in range(CLASSES)],
        image_size=SIZE,
        mean=(0.485, 0.456, 0.406),
        std=(0.229, 0.224, 0.225),
        data="",
        data_fingerprint="",
        test_top1=None,
        test_top5=None,
        bn_layers=list(layers),
        weights_sha256="0" * 64,
    )
    stats = {
        n: ClassStats(m.running_mean[None].double(), m.running_var[None].double(), torch.ones(1))
        for n, m in layers.items()
    }
    teacher = Teacher(meta, net, stats)
    labels = torch.zeros(ipc, dtype=torch.long)
    targets = {n: (s.mean[0].float(), s.var[0].float()) for n, s in stats.items()}
    cfg = SynthConfig(teacher=Path("stand-in"), iterations=steps).resolved(SIZE)
    cpu = Precision.choose("none", torch.device("cpu"))

    def synth() -> None:
        optimize_images(teacher, labels, targets, synthesis_steps(cfg), torch.Generator().manual_seed(0), cpu)

    def plain() -> None:
        x = torch.randn(ipc, 3, SIZE, SIZE, requires_grad=True)
        for _ in range(steps):
            F.cross_entropy(net(x), labels).backward()

    times = alternate({"synth": synth, "plain": plain}, repeats=2)
    return {
        "synth_steps_per_s": steps / times["synth"],
        "synth_plain_steps_per_s": steps / times["plain"],
        "synth_ratio": times["plain"] / times["synth"],
    }


def train_peak_rss(count: int) -> float:
    """Peak RSS of `lpq train` (one epoch, a small student, one worker) on a distilled set of ``count`` images."""
    folder = distilled_folder(count)
    labels = labels_for(folder, count, ratio=max(1.0, count / BATCH / 8))  # 8 stored batches: teacher time bounded
    run = OUT / "throughput" / f"run-{count}"
    shutil.rmtree(run, ignore_errors=True)  # a fresh run each time: a finished one would resume to nothing
    cmd = [
        sys.executable,
        "-m",
        "lpq",
        "train",
        str(folder),
        str(labels),
        "--model",
        "mobilenet_v3_small",
        "--epochs",
        "1",
        "--evals",
        "1",
        "--eval-data",
        str(folder),
        "--workers",
        "1",
        "--device",
        "cpu",
        "-o",
        str(run),
        "-q",
        "--json",
    ]
    _, rss = peak_rss(cmd, {**os.environ, "TORCH_HOME": str(stand_in_torch_home())})
    return rss


def projection() -> list[dict[str, object]]:
    """FLOPs and H100-hours of each stage of ImageNet-1K distillation with the authors' settings."""
    from torch.utils.flop_counter import FlopCounterMode

    from lpq.models import build_model

    net = build_model("resnet18", CLASSES, SIZE).eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        net(torch.zeros(1, 3, SIZE, SIZE))
    forward = counter.get_total_flops()  # per image
    rows = []
    for ipc in (10, 50):
        n = CLASSES * ipc
        stages = {
            "synthesis (4,000 steps per class, batch = IPC)": CLASSES * 4000 * ipc * 3 * forward,
            "relabel, full (300 epochs)": 300 * n * forward,
            "relabel, pruned x10": 300 * n * forward / 10,
            "relabel, pruned x40": 300 * n * forward / 40,
            "student (300 epochs)": 300 * n * 3 * forward,
        }
        for stage, flops in stages.items():
            rows.append(
                {
                    "ipc": ipc,
                    "stage": stage,
                    "pflop": flops / 1e15,
                    "h100_hours": flops / (ASSUMED_FRACTION * H100_BF16) / 3600,
                }
            )
    return [{"forward_gflop_per_image": forward / 1e9}, *rows]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batches", type=int, default=16, help="batches timed per rate")
    ap.add_argument("--rss-sizes", type=int, nargs=2, default=[1000, 10000])
    ap.add_argument("--relabel-only", action="store_true", help="re-measure the relabel ratio into the saved result")
    args = ap.parse_args()
    os.environ["TORCH_HOME"] = str(stand_in_torch_home())
    if args.relabel_only:
        saved = json.loads((RESULTS / "throughput.json").read_text())
        saved.update(relabel_vs_forward(distilled_folder(args.rss_sizes[0]), 2 * args.batches))
        print({k: v for k, v in saved.items() if k.startswith(("relabel", "forward"))})
        write_result("throughput", {k: v for k, v in saved.items() if k != "env"})
        return
    folder = distilled_folder(args.rss_sizes[0])
    labels = labels_for(folder, args.rss_sizes[0], ratio=1.0)
    doc: dict[str, object] = {"size": SIZE, "batch": BATCH, "threads": torch.get_num_threads()}
    doc.update(loader_rates(folder, labels, args.batches))
    train = train_vs_plain(folder, labels, args.batches // 2)
    step_rate = train["plain_steps_per_s"]
    doc.update(train)
    doc["student_step_batches_per_s"] = step_rate
    doc["loader_vs_step"] = doc["loader_2w_batches_per_s"] / step_rate  # type: ignore[operator]
    doc["workers_for_30ms_gpu_step"] = math.ceil((1 / 0.030) / doc["loader_1w_batches_per_s"])  # type: ignore[operator]
    doc.update(relabel_vs_forward(folder, 2 * args.batches))  # one worker start per timed run, amortized
    doc.update(synth_vs_plain(ipc=10, steps=4))
    rss = {count: train_peak_rss(count) for count in args.rss_sizes}
    doc["train_peak_rss_mib"] = {str(k): v for k, v in rss.items()}
    doc["train_rss_ratio"] = rss[args.rss_sizes[1]] / rss[args.rss_sizes[0]]
    doc["projection"] = projection()
    doc["assumed_h100_fraction"] = ASSUMED_FRACTION
    for key, value in doc.items():
        if key != "projection":
            print(f"{key}: {value}")
    for row in doc["projection"]:  # type: ignore[union-attr]
        print(row)
    write_result("throughput", {**doc, "environment": environment()})


# RESULTS.md: this benchmark's section, rendered from its JSON (benchmarks/run_all.py --render).


def results_section(cmd: str) -> list[str]:
    d = load("throughput")
    if not d:
        return []
    proj = [r for r in d["projection"] if "stage" in r]
    return [
        *section("Keeping a GPU fed, measured on this CPU (ResNet-18, 224 px, batch 32)", cmd),
        table(
            ["measure", "value", "target"],
            [
                [
                    "loader, 0 / 1 / 2 workers (stored batches/s)",
                    f"{d['loader_0w_batches_per_s']:.1f} / {d['loader_1w_batches_per_s']:.1f} / "
                    f"{d['loader_2w_batches_per_s']:.1f}",
                    "",
                ],
                ["student forward+backward (batches/s)", f"{d['student_step_batches_per_s']:.2f}", ""],
                ["loader (2 workers) over the step", f"x{d['loader_vs_step']:.1f}", ">= x5"],
                ["workers a 30 ms GPU step needs", str(d["workers_for_30ms_gpu_step"]), ""],
                ["relabel over the teacher's plain forward", f"{d['relabel_ratio']:.2f}", ">= 0.9"],
                ["training from .lpql over plain forward+backward", f"{d['train_ratio']:.2f}", ">= 0.9"],
                ["a synthesis step over plain forward+backward", f"{d['synth_ratio']:.2f}", ">= 0.8"],
                [
                    "peak RSS of lpq train, 1,000 / 10,000 images (MiB)",
                    " / ".join(f"{v:.0f}" for v in d["train_peak_rss_mib"].values()),
                    "",
                ],
                ["their ratio", f"{d['train_rss_ratio']:.3f}", "<= 1.2"],
            ],
        ),
        "",
        f"Projection for ImageNet-1K with the authors' settings: FLOPs counted from ResNet-18 "
        f"({d['projection'][0]['forward_gflop_per_image']:.2f} GFLOP per 224 px forward), hours on one H100 at an "
        f"assumed {d['assumed_h100_fraction']:.0%} of its 989 TFLOP/s dense bf16 peak (no GPU was available to "
        "measure it).",
        "",
        table(
            ["IPC", "stage", "PFLOP", "H100-hours"],
            [[str(r["ipc"]), r["stage"], f"{r['pflop']:.1f}", f"{r['h100_hours']:.2f}"] for r in proj],
        ),
        "",
    ]


if __name__ == "__main__":
    main()
