"""Relabel CIFAR-10 synthetic images with the squeeze teacher: throughput, file sizes, and real-logit storage.

Claim (issue: labels): relabelling runs at least 0.8x the teacher's plain eval forward rate on the same
batches (augmentation, encoding and writing must not dominate; median of 3 alternating runs over the
same 40 batches). Also writes the full-label file (f32) that benchmarks/storage.py and benchmarks/train.py
use, the teacher's logits of every stored sample as .npy (for `storage.py --logits`), and the size of
full / x10 / x40 / x10+MR-k files for several k and value encodings next to the authors' layout.

    python benchmarks/relabel.py --images benchmarks/out/syn-ipc10-classwise --epochs 300
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from common import OUT, TEACHER, alternate, write_result

from lpq.data import load_split
from lpq.format import LpqlReader
from lpq.labels.prune import prune_file
from lpq.labels.quantize import quantize_file
from lpq.labels.relabel import Labeller, RelabelConfig, build_header, relabel
from lpq.labels.replay import plan_batch, render
from lpq.squeeze import load_teacher


def throughput(images: str, teacher_path: Path, batches: int = 40) -> dict[str, float]:
    """Relabel's per-batch work (plan, render, teacher, quantize, encode) against the plain forward."""
    teacher = load_teacher(teacher_path, need_stats=False)
    data = load_split(images, "train")
    cfg = RelabelConfig(
        images=images, teacher=teacher_path, epochs=max(1, batches), batch_size=64, scheme="mr", top_k=5, values="i8"
    )
    header = build_header(cfg, teacher, data)
    labeller = Labeller(header, teacher, data, torch.device("cpu"))
    from lpq.format.layout import BatchCodec

    codec = BatchCodec(header)
    ids = header.prune.kept[:batches]
    hw = np.tile(np.array(data.images.shape[2:]), (len(data), 1))
    prepared = []
    for bid in ids:
        e, b = divmod(bid, header.relabel.batches_per_epoch)
        prepared.append(teacher.normalize(render(plan_batch(header, e, b, hw), data.images, header)))

    def full() -> None:
        for bid in ids:
            _, rec, _ = labeller.logits(bid)
            codec.encode(rec)

    @torch.no_grad()
    def plain() -> None:
        for x in prepared:
            teacher.model(x)

    times = alternate({"relabel": full, "forward": plain})
    rel, fwd = times["relabel"], times["forward"]
    return {"relabel_batches_per_s": len(ids) / rel, "forward_batches_per_s": len(ids) / fwd, "ratio": fwd / rel}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", default=str(OUT / "syn-ipc10-classwise"))
    ap.add_argument("--epochs", type=int, default=300)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--teacher", type=Path, default=TEACHER)
    ap.add_argument("--tag", default="ipc10")
    args = ap.parse_args()
    full = OUT / f"labels-{args.tag}-full.lpql"
    full.unlink(missing_ok=True)
    t0 = time.perf_counter()
    res = relabel(
        RelabelConfig(
            images=args.images,
            teacher=args.teacher,
            output=full,
            epochs=args.epochs,
            batch_size=args.batch_size,
            values="f32",
        ),
        show=True,
    )
    wall = time.perf_counter() - t0
    with LpqlReader(full) as r:
        logits = np.concatenate([r.read(int(b)).values for b in r.batch_ids])
    np.save(OUT / f"logits-{args.tag}.npy", logits)
    sizes: dict[str, dict[str, float]] = {}
    variants = [
        ("full f16", None, None, "f16", 1),
        ("full i8", None, None, "i8", 1),
        ("x10 f16", None, None, "f16", 10),
        ("x40 f16", None, None, "f16", 40),
    ] + [(f"x10 MR-{k} {v}", "mr", k, v, 10) for k in (1, 2, 5) for v in ("f16", "i8", "i4")]
    samples_full = res.samples
    for name, scheme, k, values, ratio in variants:
        src = full
        if ratio > 1:
            src = OUT / f"tmp-{args.tag}-x{ratio}.lpql"
            src.unlink(missing_ok=True)
            prune_file(full, ratio, src, seed=0)
        dst = OUT / f"tmp-{args.tag}-q.lpql"
        dst.unlink(missing_ok=True)
        quantize_file(src, dst, scheme or "none", k, values)
        with LpqlReader(dst) as r:
            n = sum(r.header.batch_size_of(int(b)) for b in r.batch_ids)
        sizes[name] = {
            "bytes": dst.stat().st_size,
            "bytes_per_stored_sample": dst.stat().st_size / n,
            "compression_vs_full_f16": (samples_full * r.header.num_classes * 2) / dst.stat().st_size,
        }
        dst.unlink()
        if src != full:
            src.unlink()
    report = {
        "relabel": res.model_dump(mode="json"),
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "wall_seconds": wall,
        "sizes": sizes,
        "throughput": throughput(args.images, args.teacher),
    }
    print(report)
    write_result(f"relabel-{args.tag}", report)


if __name__ == "__main__":
    main()
