"""The teacher's class-statistics pass against its plain forward, on the same batches.

Claim (issue: squeeze): recording per-class BatchNorm statistics costs at most 1.25x the teacher's plain
eval forward over the same images (rate ratio >= 0.8), measured side by side in one run (3 alternating
repeats each, median, 2 threads). The teacher is the one `benchmarks/accuracy.py` trained with
`lpq squeeze` (its test top-1 is read from the file); run that first.

    python benchmarks/squeeze.py --dataset cifar10      # or tiny
"""

from __future__ import annotations

import argparse

import torch
from common import OUT, alternate, cifar_folder, load, section, tiny_folder, write_result

from lpq.artifacts.teacher import load_teacher
from lpq.data import load_split
from lpq.data.transforms import normalize
from lpq.method.bn import record_class_stats
from lpq.runtime import Precision

FOLDERS = {"cifar10": cifar_folder, "tiny": lambda: tiny_folder(32)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", choices=sorted(FOLDERS), default="cifar10")
    ap.add_argument("--images", type=int, default=5000, help="images timed in the rate comparison")
    args = ap.parse_args()
    teacher_path = OUT / "accuracy" / args.dataset / "teacher.lpqt"
    teacher = load_teacher(teacher_path)
    train = load_split(str(FOLDERS[args.dataset]()), "train")
    spec = teacher.meta.input_spec()
    x = normalize(spec, train.images[: args.images])
    y = train.labels[: args.images]
    model = teacher.model.eval()
    cpu = Precision.choose("none", torch.device("cpu"))

    @torch.no_grad()
    def forward() -> None:
        for i in range(0, len(x), 256):
            model(x[i : i + 256])

    def stats_pass() -> None:
        record_class_stats(
            model, ((x[i : i + 256], y[i : i + 256]) for i in range(0, len(x), 256)), teacher.meta.num_classes, cpu
        )

    times = alternate({"forward": forward, "stats": stats_pass})
    m = teacher.meta
    report = {
        "dataset": args.dataset,
        "architecture": m.architecture,
        "image_size": m.image_size,
        "teacher_epochs": m.training.get("epochs"),
        "test_top1": m.test_top1,
        "test_top5": m.test_top5,
        "forward_images_per_s": args.images / times["forward"],
        "stats_images_per_s": args.images / times["stats"],
        "stats_rate_ratio": times["forward"] / times["stats"],
    }
    print(report)
    write_result(f"squeeze-{args.dataset}", report)


# RESULTS.md: this benchmark's section, rendered from its JSON (benchmarks/run_all.py --render).


def results_section(cmd: str) -> list[str]:
    sq = load("squeeze-tiny")
    if not sq:
        return []
    return [
        *section("The class-statistics pass (`lpq squeeze`)", cmd),
        f"Tiny-ImageNet teacher ({sq['architecture']}, {sq['image_size']} px): statistics pass "
        f"{sq['stats_images_per_s']:.0f} images/s against {sq['forward_images_per_s']:.0f} for the plain forward, "
        f"ratio {sq['stats_rate_ratio']:.2f} (target >= 0.8).",
        "",
    ]


if __name__ == "__main__":
    main()
