"""Class-wise vs mixed (SRe2L) synthesis on CIFAR-10 with the squeeze teacher, on the same budget.

Claim (issue: synth): with IPC 10 and the same iteration budget for both modes, the teacher classifies at
least 95% of the class-wise images as their class; within-class cosine similarity of the teacher's
penultimate features is lower for class-wise than for mixed batching (as the paper reports); and the
synthesis step rate is at least 0.7x the teacher's plain forward+backward rate on the same batch shape
(median of 3 timed runs of 20 steps each, side by side). Writes a contact sheet PNG per mode.

    python benchmarks/synth.py --ipc 10 --iterations 300
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from common import OUT, RESULTS, TEACHER, alternate, load, section, table, write_result
from PIL import Image

from lpq.artifacts.teacher import load_teacher
from lpq.configs.synth import SynthConfig
from lpq.method.synthesis import optimize_images
from lpq.runtime import Precision
from lpq.stages.synth import synthesis_steps, synthesize


def contact_sheet(folder: Path, classes: list[str], per_class: int, path: Path, scale: int = 3) -> None:
    rows = []
    for c in classes:
        files = sorted((folder / c).glob("*.png"))[:per_class]
        rows.append(np.concatenate([np.asarray(Image.open(f).convert("RGB")) for f in files], axis=1))
    sheet = np.concatenate(rows, axis=0)
    Image.fromarray(sheet).resize((sheet.shape[1] * scale, sheet.shape[0] * scale), Image.NEAREST).save(path)


def step_rates(teacher_path: Path, ipc: int, steps: int = 20) -> tuple[float, float]:
    """(synthesis steps/s, plain teacher forward+backward steps/s) on the same (ipc, 3, S, S) batch."""
    t = load_teacher(teacher_path)
    model = t.model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    s = t.meta.image_size
    labels = torch.zeros(ipc, dtype=torch.long)
    targets = {n: (st.mean[0].float(), st.var[0].float()) for n, st in t.stats.items()}
    cfg = SynthConfig(teacher=teacher_path, iterations=steps).resolved(s)

    def synth_run() -> None:
        cpu = Precision.choose("none", torch.device("cpu"))
        optimize_images(t, labels, targets, synthesis_steps(cfg), torch.Generator().manual_seed(0), cpu)

    def plain_run() -> None:
        x = torch.randn(ipc, 3, s, s, requires_grad=True)
        for _ in range(steps):
            loss = F.cross_entropy(model(x), labels)
            loss.backward()

    times = alternate({"synth": synth_run, "plain": plain_run})
    return steps / times["synth"], steps / times["plain"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ipc", type=int, default=10)
    ap.add_argument("--iterations", type=int, default=300)
    ap.add_argument("--teacher", type=Path, default=TEACHER)
    ap.add_argument("--classwise-only", action="store_true", help="skip the mixed (SRe2L) baseline")
    ap.add_argument("--rate-only", action="store_true", help="only re-measure the step rates into the saved result")
    args = ap.parse_args()
    saved = RESULTS / f"synth-ipc{args.ipc}.json"
    if args.rate_only:
        report = json.loads(saved.read_text())
        report.pop("env", None)
        synth_rate, plain_rate = step_rates(args.teacher, args.ipc)
        report.update(
            synth_steps_per_s=synth_rate, plain_fwd_bwd_steps_per_s=plain_rate, rate_ratio=synth_rate / plain_rate
        )
        print(report)
        write_result(f"synth-ipc{args.ipc}", report)
        return
    report = {"ipc": args.ipc, "iterations": args.iterations, "teacher": str(args.teacher)}
    for mode in ("classwise",) if args.classwise_only else ("classwise", "mixed"):
        out = OUT / f"syn-ipc{args.ipc}-{mode}"
        shutil.rmtree(out, ignore_errors=True)
        t0 = time.perf_counter()
        m = synthesize(
            SynthConfig(teacher=args.teacher, output=out, ipc=args.ipc, iterations=args.iterations, batching=mode),
            show=True,
        )
        wall = time.perf_counter() - t0
        RESULTS.mkdir(parents=True, exist_ok=True)
        contact_sheet(out, m.class_names, min(args.ipc, 8), RESULTS / f"contact-ipc{args.ipc}-{mode}.png")
        report[mode] = {
            "teacher_top1": m.teacher_top1,
            "within_class_cosine": m.within_class_cosine,
            "wall_seconds": wall,
            "folder": str(out),
        }
        print(mode, report[mode])
    synth_rate, plain_rate = step_rates(args.teacher, args.ipc)
    report["synth_steps_per_s"] = synth_rate
    report["plain_fwd_bwd_steps_per_s"] = plain_rate
    report["rate_ratio"] = synth_rate / plain_rate
    print(report)
    write_result(f"synth-ipc{args.ipc}", report)


# RESULTS.md: this benchmark's section, rendered from its JSON (benchmarks/run_all.py --render).


def results_section() -> list[str]:
    d = load("synth-ipc10")
    if not d:
        return []
    modes = [m for m in ("classwise", "mixed") if m in d]
    return [
        *section(
            "Synthesis, CIFAR-10 IPC 10: class-wise against mixed (SRe2L) batching",
            f"python benchmarks/synth.py --ipc 10 --iterations {d['iterations']}",
        ),
        table(
            ["batching", "teacher top-1 on images", "within-class cosine", "wall s"],
            [
                [m, f"{d[m]['teacher_top1']:.1f}%", f"{d[m]['within_class_cosine']:.4f}", f"{d[m]['wall_seconds']:.0f}"]
                for m in modes
            ],
        ),
        "",
        f"Synthesis step {d['synth_steps_per_s']:.2f}/s against the teacher's plain forward+backward "
        f"{d['plain_fwd_bwd_steps_per_s']:.2f}/s on the same batch: ratio {d['rate_ratio']:.2f}.",
        "",
        *(f"![{m}](results/contact-ipc10-{m}.png)" for m in modes),
        "",
    ]


if __name__ == "__main__":
    main()
