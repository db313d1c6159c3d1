"""The CIFAR-10 teacher: `convnet` trained by `lpq squeeze` on ../shared/data, and the squeeze pass's cost.

Claim (issue: squeeze): the convnet teacher reaches at least 80% top-1 on the real CIFAR-10 test split,
and the class-statistics pass runs at least 0.8x the model's plain eval forward rate on the same batches
(ratio measured side by side in one run: 3 alternating repeats each, median). Later benchmarks reuse the
teacher this writes (benchmarks/out/cifar10-convnet.lpqt).

    python benchmarks/squeeze.py --epochs 12        # trains, then measures; about 200 s/epoch on 2 cores
    python benchmarks/squeeze.py --weights FILE     # measure an existing teacher's stats pass only
"""

from __future__ import annotations

import argparse
import json

import torch
from common import OUT, TEACHER, alternate, cifar_folder, write_result

from lpq.data import load_split
from lpq.squeeze import SqueezeConfig, load_teacher, squeeze
from lpq.squeeze.squeeze import record_class_stats


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--weights", help="skip training: an existing weights file")
    ap.add_argument("--images", type=int, default=5000, help="images timed in the rate comparison")
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    data = f"imagefolder:{cifar_folder()}"
    teacher_path = TEACHER
    cfg = SqueezeConfig(data=data, model="convnet", epochs=args.epochs, weights=args.weights, output=teacher_path)
    result = squeeze(cfg, show=True)
    print(result.model_dump_json(indent=2))

    teacher = load_teacher(teacher_path)
    train = load_split(data, "train")
    sub = train.images[: args.images]
    x = teacher.normalize(sub.float() / 255)
    model = teacher.model.eval()

    @torch.no_grad()
    def forward() -> None:
        for i in range(0, len(x), 256):
            model(x[i : i + 256])

    def stats_pass() -> None:
        part = type(train)(train.name, sub, train.labels[: args.images], train.classes, train.mean, train.std)
        record_class_stats(model, part, train.mean, train.std, torch.device("cpu"))

    times = alternate({"forward": forward, "stats": stats_pass})
    fwd, st = times["forward"], times["stats"]
    report = {
        "teacher": json.loads(result.model_dump_json()),
        "forward_images_per_s": args.images / fwd,
        "stats_images_per_s": args.images / st,
        "stats_rate_ratio": fwd / st,
        "times_s": times,
    }
    print(json.dumps(report, indent=2))
    write_result("squeeze", report)


if __name__ == "__main__":
    main()
