"""Streaming at ImageNet shape: memory must not grow with the number of images.

Claim (issue: ImageNet scale, part 1): the class-statistics pass and the evaluation of `lpq squeeze` stream
image folders of any size, so their peak resident memory on 20,000 images is at most 1.2x that on 2,000.
Folders are ImageNet-shaped: 1,000 class folders of JPEGs of mixed sizes (100-500 px a side, random
aspect), made once from ../shared/data's Tiny-ImageNet images (upscaled; the pixels' content does not
matter here, their decoding and resizing does). Teacher: ResNet-18 at 224 px (torchvision's recipe:
RandomResizedCrop for the statistics pass, Resize 256 + CenterCrop 224 for evaluation), weights loaded as
`--weights torchvision:resnet18.IMAGENET1K_V1` from a stand-in checkpoint in a private TORCH_HOME (no
network here). Each pass runs in a fresh process; peak RSS is that process's (and, separately, its largest
DataLoader worker's). Hardware: the 2-core CPU these benchmarks run on, torch's threads as set below.

    python benchmarks/scale.py                   # 2,000 and 20,000 images, about 40 minutes on 2 cores
    python benchmarks/scale.py --sizes 200 2000  # a quicker look

With ``--sources`` (issue: webdataset and Hugging Face sources) the same images are also written as
webdataset shards of 100 images and as a Hugging Face dataset saved to disk, and the statistics pass's
reading (decode, RandomResizedCrop 224, flip, batching in DataLoader workers; no model, so the reader is
what is timed) runs over each source at both sizes, side by side in one run: peak RSS at the larger size
(5x the shards) over the smaller, and images/s against the folder reader.

    python benchmarks/scale.py --sources --sizes 1000 5000   # about 10 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from common import OUT, environment, load, load_note, section, stand_in_torch_home, table, tiny_folder, write_result

ILSVRC_TRAIN = 1_281_167  # images in ILSVRC-2012's training split
CLASSES = 1000


def build_folder(count: int) -> Path:
    """``count`` JPEGs in 1,000 class folders (train/, and val/ the same files), made once."""
    from PIL import Image

    folder = OUT / "scale" / f"imagenet-shaped-{count}"
    if (folder / ".complete").exists():
        return folder
    source = sorted((tiny_folder(32).parent / "tiny-imagenet-200" / "train").glob("*/*.jpg"))
    rng = np.random.default_rng(count)
    for i in range(count):
        out = folder / "train" / f"n{i % CLASSES:08d}" / f"{i:06d}.jpg"
        out.parent.mkdir(parents=True, exist_ok=True)
        h, w = (int(v) for v in rng.integers(100, 501, 2))
        with Image.open(source[int(rng.integers(len(source)))]) as im:
            im.convert("RGB").resize((w, h), Image.BICUBIC).save(out, quality=90)
    (folder / "val").symlink_to("train")
    (folder / ".complete").touch()
    return folder


SHARD = 100  # images per webdataset shard


def build_sources(folder: Path) -> dict[str, str]:
    """The folder's training images as webdataset shards and as a saved Hugging Face dataset, made once; the
    --data value of each, the folder included."""
    import datasets
    import webdataset as wds

    from lpq.data import open_split

    files = open_split(str(folder), "train")
    paths, labels, classes = files.files.files, files.labels.tolist(), files.classes  # type: ignore[attr-defined]
    shards, hub = folder.parent / f"{folder.name}-wds", folder.parent / f"{folder.name}-hf"
    if not (shards / ".complete").exists():
        shards.mkdir(exist_ok=True)
        (shards / "classes.txt").write_text("\n".join(classes) + "\n")
        for s in range(0, len(paths), SHARD):
            with wds.TarWriter(str(shards / f"train-{s // SHARD:06d}.tar")) as sink:
                for i in range(s, min(s + SHARD, len(paths))):
                    sink.write({"__key__": f"{i:08d}", "jpg": paths[i].read_bytes(), "cls": labels[i]})
        (shards / ".complete").touch()
    if not (hub / ".complete").exists():
        features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=classes)})
        rows = datasets.Dataset.from_dict(
            {"image": [{"bytes": p.read_bytes(), "path": None} for p in paths], "label": labels}, features=features
        )
        datasets.DatasetDict({"train": rows}).save_to_disk(str(hub))
        (hub / ".complete").touch()
    last = (len(paths) - 1) // SHARD
    return {"folder": str(folder), "wds": f"wds:{shards}/train-{{000000..{last:06d}}}.tar", "hf": f"hf:{hub}"}


def peak_rss_mib() -> float:
    """This process's peak resident memory since it started its program (VmHWM: ru_maxrss would also count the
    parent's memory at fork time, which the sources run's parent, holding a dataset being written, inflates)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def read_child(data: str, workers: int) -> None:
    """The statistics pass's reading of ``data`` (no model): images/s and peak RSS of this process and workers."""
    from lpq.data import InputSpec, batches, open_split

    t0 = time.perf_counter()
    split = open_split(data, "train")
    opened = time.perf_counter() - t0
    spec = InputSpec(size=224, resize="center-crop", mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    seen = 0
    t0 = time.perf_counter()
    for x, _ in batches(split, spec, train=True, batch_size=64, workers=workers):
        seen += len(x)
    seconds = time.perf_counter() - t0
    kib = 1024.0
    print(
        json.dumps(
            {
                "images": seen,
                "open_seconds": opened,
                "images_per_second": seen / seconds,
                "peak_rss_mib": peak_rss_mib(),
                "worker_peak_rss_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / kib,
            }
        )
    )


def sources(sizes: list[int], workers: int) -> None:
    """Folder, shards and dataset read side by side at two sizes (see the module docstring)."""
    rows = []
    for count in sizes:
        for kind, data in build_sources(build_folder(count)).items():
            r = measure("read", Path(data), workers)
            rows.append({"source": kind, "shards": -(-count // SHARD) if kind == "wds" else None, **r})
            print(f"{kind:6s} {count:6d} images: {r['images_per_second']:.1f} img/s, "
                  f"peak RSS {r['peak_rss_mib']:.0f} MiB (workers {r['worker_peak_rss_mib']:.0f} MiB), "
                  f"opened in {r['open_seconds']:.1f} s", flush=True)  # fmt: skip
    small, large = sizes
    summary = {}
    for kind in ("folder", "wds", "hf"):
        a, b = (next(r for r in rows if r["source"] == kind and r["images"] == n) for n in (small, large))
        folder = next(r for r in rows if r["source"] == "folder" and r["images"] == large)
        summary[kind] = {
            "rss": b["peak_rss_mib"] / a["peak_rss_mib"],
            "worker_rss": b["worker_peak_rss_mib"] / a["worker_peak_rss_mib"],
            "speed_vs_folder": b["images_per_second"] / folder["images_per_second"],
        }
        s = summary[kind]
        print(f"{kind}: peak RSS {large} / {small} images = {s['rss']:.3f} (workers {s['worker_rss']:.3f}), "
              f"target <= 1.2: {'met' if max(s['rss'], s['worker_rss']) <= 1.2 else 'NOT met'}; "
              f"images/s x{s['speed_vs_folder']:.2f} of the folder's")  # fmt: skip
    write_result("scale-sources", {"sizes": sizes, "workers": workers, "shard_images": SHARD, "rows": rows,
                                   "summary": summary, "environment": environment()})  # fmt: skip


def child(task: str, folder: Path, workers: int) -> None:
    """One pass in this process: print images/s and this process's and its workers' peak RSS (MiB)."""
    if task == "read":
        read_child(str(folder), workers)
        return
    import torch

    from lpq.artifacts.teacher import pretrained_input
    from lpq.data import batches, open_split
    from lpq.method.bn import record_class_stats
    from lpq.models import build_model, evaluate
    from lpq.models.weights import load_into, read_weights
    from lpq.runtime import Precision

    weights = read_weights("torchvision:resnet18.IMAGENET1K_V1")
    spec = pretrained_input(weights)
    net = build_model("resnet18", CLASSES, spec.size)
    load_into(net, weights)
    cpu = Precision.choose("none", torch.device("cpu"))
    split = open_split(str(folder), "train" if task == "stats" else "test")
    data = batches(split, spec, train=task == "stats", batch_size=64, workers=workers)
    t0 = time.perf_counter()
    if task == "stats":
        record_class_stats(net, data, CLASSES, cpu)
    else:
        evaluate(net, data, cpu.device)
    seconds = time.perf_counter() - t0
    kib = 1024.0
    print(
        json.dumps(
            {
                "images": len(split),
                "seconds": seconds,
                "images_per_second": len(split) / seconds,
                "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / kib,
                "worker_peak_rss_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / kib,
            }
        )
    )


def measure(task: str, folder: Path, workers: int) -> dict:
    env = {**os.environ, "TORCH_HOME": str(stand_in_torch_home())}
    run = subprocess.run(
        [sys.executable, __file__, "--child", task, str(folder), "--workers", str(workers)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if run.returncode:
        sys.exit(run.stderr[-3000:])
    return json.loads(run.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs=2, default=[2000, 20000])
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--sources", action="store_true", help="folder, webdataset and Hugging Face readers side by side")
    ap.add_argument("--child", nargs=2, metavar=("TASK", "FOLDER"))
    args = ap.parse_args()
    if args.child:
        child(args.child[0], Path(args.child[1]), args.workers)
        return
    if args.sources:
        sources(args.sizes, args.workers)
        return
    rows = []
    for count in args.sizes:
        folder = build_folder(count)
        for task in ("stats", "eval"):
            r = measure(task, folder, args.workers)
            rows.append({"task": task, **r})
            print(
                f"{task:5s} {count:6d} images: {r['images_per_second']:.1f} img/s, "
                f"peak RSS {r['peak_rss_mib']:.0f} MiB (workers {r['worker_peak_rss_mib']:.0f} MiB)",
                flush=True,
            )
    small, large = args.sizes
    ratios = {}
    for task in ("stats", "eval"):
        a, b = (next(r for r in rows if r["task"] == task and r["images"] == n) for n in (small, large))
        ratios[task] = {
            "rss": b["peak_rss_mib"] / a["peak_rss_mib"],
            "worker_rss": b["worker_peak_rss_mib"] / a["worker_peak_rss_mib"],
        }
    stats_rate = next(r for r in rows if r["task"] == "stats" and r["images"] == large)["images_per_second"]
    projection = ILSVRC_TRAIN / stats_rate / 3600
    for task, r in ratios.items():
        print(
            f"{task}: peak RSS {large} / {small} images = {r['rss']:.3f} (workers {r['worker_rss']:.3f}); "
            f"target <= 1.2: {'met' if max(r.values()) <= 1.2 else 'NOT met'}"
        )
    print(f"statistics pass over ILSVRC-2012 ({ILSVRC_TRAIN:,} images) on this machine: {projection:.1f} hours")
    write_result(
        "scale",
        {
            "sizes": args.sizes,
            "workers": args.workers,
            "rows": rows,
            "ratios": ratios,
            "ilsvrc_stats_hours": projection,
            "environment": environment(),
        },
    )


# RESULTS.md: this benchmark's section, rendered from its JSON (benchmarks/run_all.py --render).


def results_section(cmd: str) -> list[str]:
    d = load("scale")
    if not d:
        return []
    rows = [
        [
            r["task"],
            f"{r['images']:,}",
            f"{r['images_per_second']:.1f}",
            f"{r['peak_rss_mib']:.0f}",
            f"{r['worker_peak_rss_mib']:.0f}",
        ]
        for r in d["rows"]
    ]
    ratios = "; ".join(f"{task} {r['rss']:.3f} (worker {r['worker_rss']:.3f})" for task, r in d["ratios"].items())
    return [
        *section("Streaming at ImageNet shape: memory against the number of images", cmd),
        "Folders of 1,000 classes of JPEGs of 100-500 px (Tiny-ImageNet images upscaled); ResNet-18 at 224 px "
        f"with {d['workers']} decoding worker(s); each pass in a fresh process.",
        "",
        table(["pass", "images", "images/s", "peak RSS MiB", "worker peak RSS MiB"], rows),
        "",
        f"Peak RSS at {d['sizes'][1]:,} over {d['sizes'][0]:,} images: {ratios} (target at most 1.2). The statistics "
        f"pass over ILSVRC-2012's 1,281,167 training images would take {d['ilsvrc_stats_hours']:.1f} hours on this "
        f"machine at the measured rate{load_note(d)}. Other jobs on the same 2 cores lower the images/s, not the "
        "memory ratios this benchmark checks (the run recorded here shared the cores with a training job).",
        "",
        *sources_section(cmd),
    ]


def sources_section(cmd: str) -> list[str]:
    d = load("scale-sources")
    if not d:
        return []
    rows = [
        [
            r["source"],
            f"{r['images']:,}",
            "-" if r["shards"] is None else str(r["shards"]),
            f"{r['images_per_second']:.1f}",
            f"{r['peak_rss_mib']:.0f}",
            f"{r['worker_peak_rss_mib']:.0f}",
            f"{r['open_seconds']:.1f}",
        ]
        for r in d["rows"]
    ]
    small, large = d["sizes"]
    lines = "; ".join(
        f"{k} {s['rss']:.3f} (workers {s['worker_rss']:.3f}), images/s x{s['speed_vs_folder']:.2f} of the folder's"
        for k, s in d["summary"].items()
    )
    return [
        *section(
            "Webdataset shards and Hugging Face datasets against folders", f"{cmd} --sources --sizes {small} {large}"
        ),
        f"The same ImageNet-shaped JPEGs as a folder, as webdataset shards of {d['shard_images']} images and as a "
        f"Hugging Face dataset saved to disk; the statistics pass's reading only (decode, RandomResizedCrop 224, "
        f"flip, batches of 64 in {d['workers']} DataLoader worker(s); no model), each in a fresh process. 'open' is "
        "the time to open the split (shards: indexing their tar headers the first time; cached after).",
        "",
        table(["source", "images", "shards", "images/s", "peak RSS MiB", "worker peak RSS MiB", "open s"], rows),
        "",
        f"Peak RSS at {large:,} over {small:,} images, and read speed at {large:,}: {lines} (target: RSS ratio at "
        f"most 1.2){load_note(d)}.",
        "",
    ]


if __name__ == "__main__":
    main()
