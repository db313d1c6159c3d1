"""`lpq synth`: class-wise image synthesis with class BatchNorm supervision (LPQLD stage 2; README, "The method").

Images start as Gaussian noise (in the teacher's normalized space) and are optimized one class at a time:
loss = cross-entropy on the class + r_bn * sum over BN layers of (||mu_batch - mu_class||_2 +
||var_batch - var_class||_2), the first layer's term x10, with a random roll (jitter), RandomResizedCrop
and flip before every teacher pass; Adam (betas 0.5, 0.9), cosine decay, pixels clipped to [0, 1] after
every step. ``batching="mixed"`` is the SRe2L baseline: batches of several classes against the teacher's
global running statistics, on the same budget and batch shape. ``init="real"`` starts from IPC random real
training images of each class instead of noise; with 0 iterations that is the random-real-subset baseline,
written and labelled through the same files and pipeline as synthetic images.

Every class (or mixed batch) draws from its own seeded generator, so a class's images do not depend on
which process made them or on what ran before: reruns, resumed runs and torchrun ranks agree. Finished
classes are written as lossless PNGs into OUT/<class>/ by renaming a complete temporary folder; a rerun
never recomputes them. The folder also holds the run's record (lpq.artifacts.run): config.json, a metrics row
per class (or batch) in metrics.jsonl / .csv, and log.txt; and, once complete, grid.png, a contact sheet of
the images (`lpq.data.grid`).

    lpq synth --teacher teacher.lpqt --ipc 10 --iterations 1000 -o syn/
"""

from __future__ import annotations

import contextlib
import math
import shutil
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from lpq import __version__
from lpq.artifacts.manifest import MANIFEST, GroupResult, SynthManifest, load_manifest
from lpq.artifacts.run import RunRecord, rank0
from lpq.artifacts.teacher import Teacher, load_teacher
from lpq.configs.synth import SynthConfig
from lpq.data import ImageSource, check_fits, open_split
from lpq.data.grid import contact_sheet
from lpq.data.transforms import fit
from lpq.errors import LpqError
from lpq.files import atomic, write_model
from lpq.method.synthesis import SynthesisSteps, bn_targets, optimize_images
from lpq.models import penultimate_features
from lpq.progress import Show, progress
from lpq.runtime import Precision, barrier, init_distributed, pick_device

GRID = "grid.png"
RESULTS_DIR = ".classes"  # per-class results while a run is under way (hidden: not a class folder)


def synthesis_steps(cfg: SynthConfig) -> SynthesisSteps:
    """The step loop's settings of a resolved config (SynthConfig.resolved)."""
    if cfg.lr is None or cfg.r_bn is None or cfg.jitter is None:
        raise ValueError("synthesis_steps needs the resolved config (SynthConfig.resolved)")
    return SynthesisSteps(cfg.iterations, cfg.lr, cfg.r_bn, cfg.jitter, cfg.crop_scale, cfg.first_bn_multiplier)


def _groups(cfg: SynthConfig, classes: list[int]) -> list[tuple[int, list[int]]]:
    """(group id, label of each image). Class-wise: a group is a class; mixed: IPC-sized batches across classes."""
    if cfg.batching == "classwise":
        return [(c, [c] * cfg.ipc) for c in classes]
    labels = [c for _ in range(cfg.ipc) for c in classes]  # image j of every class, then j+1, ...
    return [(g, labels[g * cfg.ipc : (g + 1) * cfg.ipc]) for g in range(math.ceil(len(labels) / cfg.ipc))]


def _image_ranks(cfg: SynthConfig, group: int, size: int, num_classes: int) -> list[int]:
    """Which image of its class each image of a group is (the j of image j of class c)."""
    if cfg.batching == "classwise":
        return list(range(size))
    return [(group * cfg.ipc + i) // num_classes for i in range(size)]


def real_choice(labels: torch.Tensor, classes: range, ipc: int, seed: int) -> dict[int, list[int]]:
    """IPC random training images of each class (seeded per class, so any class range draws the same)."""
    chosen = {}
    for c in classes:
        pool = torch.nonzero(labels == c).flatten().numpy()
        if len(pool) < ipc:
            raise LpqError("synth-few-real-images", f"class {c} has {len(pool)} real images, fewer than --ipc {ipc}")
        chosen[c] = np.random.default_rng([seed, c]).choice(pool, size=ipc, replace=False).tolist()
    return chosen


def _real_images(cfg: SynthConfig, teacher: Teacher) -> ImageSource:
    real = open_split(cfg.data or teacher.meta.data, "train", cfg.root)
    if real.classes != teacher.meta.class_names:
        raise LpqError("class-mismatch", f"--data {cfg.data or teacher.meta.data} has other classes than the teacher")
    check_fits(real, teacher.meta.input_spec())
    return real


def _image_name(label_rank: int) -> str:
    return f"{label_rank:05d}.png"


def _save_group(
    out: Path, teacher: Teacher, labels: list[int], images: torch.Tensor, group: int, batching: str
) -> None:
    """Write a group's PNGs. Class-wise groups go through a temporary folder renamed when complete."""
    from PIL import Image

    arrays = (images.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
    names = teacher.meta.class_names
    if batching == "classwise":
        final = out / names[labels[0]]
        shutil.rmtree(final, ignore_errors=True)  # left by a run stopped before it recorded the class as done
        with atomic(final) as tmp:
            tmp.mkdir(parents=True)
            for i, a in enumerate(arrays):
                Image.fromarray(a).save(tmp / _image_name(i))
        return
    for c, a in zip(labels, arrays):
        folder = out / names[c]
        folder.mkdir(parents=True, exist_ok=True)
        with atomic(folder / _image_name(group)) as tmp:  # image j of a class comes from mixed group j
            Image.fromarray(a).save(tmp, format="PNG")


def _start(cfg: SynthConfig, teacher: Teacher, record: RunRecord) -> SynthManifest:
    """Check the output folder (fresh, or the same run with --resume) and record the run's settings."""
    manifest = SynthManifest(
        tool=f"lpq {__version__}",
        teacher=str(Path(cfg.teacher).resolve()),  # train reads it from wherever it runs (default evaluation data)
        teacher_sha256=teacher.meta.weights_sha256,
        settings=cfg.fingerprint(),
        class_names=teacher.meta.class_names,
    )
    # synth.json alone is a run that saved no image yet: a fresh run may take it over
    identity = {"settings": manifest.settings, "teacher_sha256": manifest.teacher_sha256}
    record.check(identity, cfg.resume, frozenset({MANIFEST}))
    record.start(identity)
    if cfg.resume and (record.root / MANIFEST).exists():
        return load_manifest(record.root).model_copy(update={"complete": False})
    write_model(record.root / MANIFEST, manifest)
    return manifest


def _done_groups(out: Path) -> dict[int, GroupResult]:
    folder = out / RESULTS_DIR
    if not folder.is_dir():
        return {}
    done = {}
    for path in sorted(folder.glob("*.json")):
        try:
            result = GroupResult.model_validate_json(path.read_text())
        except ValueError:  # pydantic's ValidationError is a ValueError
            raise LpqError(
                "synth-bad-manifest",
                f"{path} is not a group result of lpq synth",
                "delete it: the group is then made again",
            ) from None
        done[result.group] = result
    return done


def synthesize(cfg: SynthConfig, show: bool | Show = False) -> SynthManifest:
    """Synthesize the images (the classes in ``cfg.classes``, this rank's share under torchrun) and write the
    manifest. The output folder is locked while it works (by rank 0 under torchrun)."""
    with RunRecord(cfg.output, what="synth run").lock() if rank0() else contextlib.nullcontext():
        return _synthesize(cfg, show)


def _synthesize(cfg: SynthConfig, show: bool | Show) -> SynthManifest:
    teacher = load_teacher(cfg.teacher, need_stats=cfg.batching == "classwise")
    cfg = cfg.resolved(teacher.meta.image_size)
    c = teacher.meta.num_classes
    start, stop = cfg.classes or (0, c)
    if not 0 <= start < stop <= c:
        raise LpqError("bad-class-range", f"class range {start}:{stop} is outside the teacher's {c} classes")
    rank, world = init_distributed()
    precision = Precision.choose(cfg.amp, pick_device(cfg.device, rank))
    out = cfg.output
    record = RunRecord(out, what="synth run")
    if rank == 0:
        manifest = _start(cfg, teacher, record)  # the run rule first: a board writes files into the folder
        record = record.with_board(cfg.tensorboard, cfg.wandb, cfg.fingerprint())
    board = record.board
    barrier(world)
    if rank != 0:
        manifest = load_manifest(out)
    precision.model(teacher.model).eval()
    for p in teacher.model.parameters():
        p.requires_grad_(False)
    groups = _groups(cfg, list(range(start, stop)))
    done = _done_groups(out)
    mine = [g for i, g in enumerate(groups) if i % world == rank and g[0] not in done]
    # A finished run resumed elsewhere (a copied folder) needs no training images.
    real = _real_images(cfg, teacher) if cfg.init == "real" and mine else None
    picks = real_choice(real.labels, range(start, stop), cfg.ipc, cfg.seed) if real is not None else {}
    with progress(show if rank == 0 else False, log=record.log if rank == 0 else None) as bar:
        task = bar.add_task(
            f"synth ({cfg.batching})", total=len(groups), completed=len(groups) - len(mine) * world, info=""
        )
        for group, labels in mine:
            t0 = time.perf_counter()
            gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + group)
            init = None
            if real is not None:
                ranks = _image_ranks(cfg, group, len(labels), stop - start)
                spec = teacher.meta.input_spec()  # the teacher's evaluation geometry: S x S
                init = torch.stack([fit(spec, real.load(picks[c][j])) for c, j in zip(labels, ranks)])
            targets = bn_targets(teacher, labels, cfg.batching)
            images, ce, bn = optimize_images(
                teacher, torch.tensor(labels), targets, synthesis_steps(cfg), gen, precision, init
            )
            _save_group(out, teacher, labels, images, group, cfg.batching)
            correct = _teacher_correct(teacher, out, labels, group, cfg.batching)
            result = GroupResult(
                group=group,
                classes=sorted(set(labels)),
                ce_loss=ce,
                bn_loss=bn,
                teacher_correct=correct,
                seconds=time.perf_counter() - t0,
            )
            (out / RESULTS_DIR).mkdir(exist_ok=True)
            write_model(out / RESULTS_DIR / f"{group:06d}.json", result)
            bar.update(task, advance=world, info=f"ce {ce:.3f} bn {bn:.3f}")
            bar.note(
                f"group {group} ({', '.join(teacher.meta.class_names[c] for c in sorted(set(labels)))}): "
                f"ce {ce:.3f}, bn {bn:.3f}, {correct}/{len(labels)} in class, {result.seconds:.1f} s"
            )
    barrier(world)
    if rank == 0:
        manifest = _finish(manifest, teacher, record, _groups(cfg, list(range(c))))
    if board is not None:
        board.close()
    barrier(world)
    return load_manifest(out) if rank else manifest


@torch.no_grad()
def _teacher_correct(teacher: Teacher, out: Path, labels: list[int], group: int, batching: str) -> int:
    """How many of the group's saved (8-bit) images the teacher puts in their class."""
    x = torch.stack(
        [
            _load_png(out / teacher.meta.class_names[c] / _image_name(i if batching == "classwise" else group))
            for i, c in enumerate(labels)
        ]
    )
    pred = teacher.model(teacher.normalize(x.to(next(teacher.model.parameters()).device))).argmax(1).cpu()
    return int((pred == torch.tensor(labels)).sum())


def _load_png(path: Path) -> torch.Tensor:
    from PIL import Image

    with Image.open(path) as im:
        return torch.from_numpy(np.asarray(im.convert("RGB")).copy()).permute(2, 0, 1).float() / 255


@torch.no_grad()
def within_class_cosine(teacher: Teacher, out: Path, classes: range) -> float:
    """Mean over classes of the mean pairwise cosine similarity of the teacher's penultimate features."""
    sims = []
    for c in classes:
        files = sorted((out / teacher.meta.class_names[c]).glob("*.png"))
        if len(files) < 2:
            continue
        feats = penultimate_features(teacher.model, teacher.normalize(torch.stack([_load_png(f) for f in files])))
        f = F.normalize(feats.cpu().double(), dim=1)
        sim = f @ f.T
        n = len(files)
        sims.append(float((sim.sum() - sim.diagonal().sum()) / (n * (n - 1))))
    return float(np.mean(sims)) if sims else float("nan")


def _finish(
    manifest: SynthManifest, teacher: Teacher, record: RunRecord, all_groups: list[tuple[int, list[int]]]
) -> SynthManifest:
    """Fold every finished group (this run's and earlier ones') into synth.json, with the diversity report, and
    into the run's metrics (a row per group: losses, images in class, seconds)."""
    out = record.root
    done = _done_groups(out)
    sizes = {g: len(labels) for g, labels in all_groups}
    results = sorted(done.values(), key=lambda r: r.group)
    images = sum(sizes.get(r.group, 0) for r in results)
    finished = manifest.model_copy(
        update={
            "groups": results,
            "complete": all(g in done for g in sizes),
            "teacher_top1": 100.0 * sum(r.teacher_correct for r in results) / max(images, 1),
            "within_class_cosine": within_class_cosine(teacher, out, range(teacher.meta.num_classes)),
        }
    )
    record.write_rows(results, to_board=True)
    if finished.complete:  # a picture of the distilled set, as papers show it
        contact_sheet(out, out / GRID)
        if record.board is not None:
            record.board.image("images", out / GRID)
    record.finish(finished, MANIFEST)
    return finished
