"""Labels people already have: the authors' layout in, `.lpql` out, and back.

Claim (issue: labels in and out): `lpq import` reads a folder in the SRe2L / LPLD / LPQLD layout (1,000
classes, batch 128, as their relabel script writes it: one torch.save list per batch with float16 crop
fractions, flips, a uint8 CutMix permutation, a numpy float64 lambda, uint8 box corners and float16
logits, or top-k float16 logits with int16 classes, plus the JSON batch map) with torch.load
(weights_only=True) only, and stores the same labels in fewer bytes; exporting the result and importing
that again gives the same crops and the same dense targets. Logits are simulated (benchmarks/storage.py's
model); the images are a stand-in distilled set of 1,000 224 px images (only their sizes matter here).

    python benchmarks/interop.py        # about 3 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from common import OUT, distilled_folder, environment, load, section, table, write_result
from storage import simulated_logits

from lpq.format import LpqlReader
from lpq.method.targets import record_targets

CLASSES, BATCH, IMAGES, SIZE = 1000, 128, 1000, 224


def their_folder(folder: Path, k: int | None, batches: int) -> int:
    """A folder as their relabel script writes it; its bytes."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    logits = simulated_logits(batches * BATCH, CLASSES)
    batch_map = {}
    per_epoch = -(-IMAGES // BATCH)
    order = rng.permutation(IMAGES)
    for n in range(batches):
        b = n % per_epoch
        if b == 0:
            order = rng.permutation(IMAGES)
        images = order[b * BATCH : (b + 1) * BATCH]
        size = len(images)
        # RandomResizedCrop boxes as fractions of the (224 px) source, float16, as their code stores them.
        area = rng.uniform(0.08, 1.0, size)
        aspect = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3), size))
        w = np.minimum(np.round(np.sqrt(area * aspect) * SIZE), SIZE)
        h = np.minimum(np.round(np.sqrt(area / aspect) * SIZE), SIZE)
        top, left = (
            np.floor(rng.uniform(0, 1, size) * (SIZE - h + 1)),
            np.floor(rng.uniform(0, 1, size) * (SIZE - w + 1)),
        )
        coords = torch.from_numpy(np.stack([top, left, h, w], 1) / SIZE).half()
        lam = np.random.default_rng(n).beta(1.0, 1.0)  # a numpy float64, as np.random.beta returns
        cut = int(SIZE * np.sqrt(1 - lam))
        cy, cx = rng.integers(SIZE, size=2)
        box = [
            torch.tensor(int(v), dtype=torch.uint8)
            for v in (max(cy - cut // 2, 0), max(cx - cut // 2, 0), min(cy + cut // 2, SIZE), min(cx + cut // 2, SIZE))
        ]
        lg = torch.from_numpy(logits[n * BATCH : n * BATCH + size])
        labels = [lg.half()] if k is None else [torch.topk(lg, k).values.half(), torch.topk(lg, k).indices.short()]
        batch = [
            coords,
            torch.from_numpy(rng.uniform(size=size) < 0.5),
            torch.randperm(size).to(torch.uint8),
            lam,
            box,
            *labels,
        ]
        torch.save(batch, folder / f"batch_{n}.tar")
        batch_map[str(n)] = images.tolist()
    (folder / "sampler_indices_batch.json").write_text(json.dumps(batch_map))
    return sum(p.stat().st_size for p in folder.iterdir())


def lpq(*args: object) -> dict:
    run = subprocess.run(
        [sys.executable, "-m", "lpq", *map(str, args), "--json"], capture_output=True, text=True, check=False
    )
    if run.returncode:
        raise SystemExit(run.stderr)
    return json.loads(run.stdout)


def same_labels(a: Path, b: Path) -> tuple[bool, bool]:
    """(crops and images equal, dense targets at T=4 equal) for every batch of two label files."""
    crops = targets = True
    hw = np.full((IMAGES, 2), SIZE)
    with LpqlReader(a) as ra, LpqlReader(b) as rb:
        for bid in ra.batch_ids.tolist():
            x, y = ra.read(bid), rb.read(bid)
            ix, iy = ra.image_indices(x), rb.image_indices(y)
            crops &= bool(np.array_equal(ix, iy)) and bool(
                np.array_equal(ra.augment(x, hw[ix]).table(), rb.augment(y, hw[iy]).table())
            )
            targets &= bool(torch.equal(record_targets(x, ra.header, 4.0), record_targets(y, rb.header, 4.0)))
    return crops, targets


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batches", type=int, default=40)
    args = ap.parse_args()
    images = distilled_folder(IMAGES, SIZE, CLASSES)
    work = OUT / "interop"
    shutil.rmtree(work, ignore_errors=True)
    rows = []
    for name, k in (("full", None), ("MR-100", 100), ("MR-10", 10)):
        theirs = work / f"theirs-{name}"
        before = their_folder(theirs, k, args.batches)
        samples = args.batches * BATCH
        imported = lpq("import", theirs, "--images", images, "-o", work / f"{name}.lpql", "-q")
        lpq(
            "quantize",
            work / f"{name}.lpql",
            "--scheme",
            "none" if k is None else "mr",
            *([] if k is None else ["--top-k", k]),
            "--values",
            "i8",
            "-o",
            work / f"{name}-i8.lpql",
        )
        lpq("export", work / f"{name}.lpql", "-o", work / f"back-{name}", "-q")
        lpq("import", work / f"back-{name}", "--images", images, "-o", work / f"again-{name}.lpql", "-q")
        crops, targets = same_labels(work / f"{name}.lpql", work / f"again-{name}.lpql")
        row = {
            "labels": name,
            "their_bytes_per_sample": before / samples,
            "lpql_f16_bytes_per_sample": imported["file_bytes"] / samples,
            "lpql_i8_bytes_per_sample": (work / f"{name}-i8.lpql").stat().st_size / samples,
            "smaller_f16": before / imported["file_bytes"],
            "smaller_i8": before / (work / f"{name}-i8.lpql").stat().st_size,
            "round_trip_same_crops": crops,
            "round_trip_same_targets": targets,
        }
        rows.append(row)
        print(row, flush=True)
    write_result(
        "interop",
        {"classes": CLASSES, "batch": BATCH, "batches": args.batches, "rows": rows, "environment": environment()},
    )


# RESULTS.md: this benchmark's section, rendered from its JSON (benchmarks/run_all.py --render).


def results_section(cmd: str) -> list[str]:
    d = load("interop")
    if not d:
        return []
    rows = [
        [
            r["labels"],
            f"{r['their_bytes_per_sample']:.1f}",
            f"{r['lpql_f16_bytes_per_sample']:.1f} (x{r['smaller_f16']:.2f})",
            f"{r['lpql_i8_bytes_per_sample']:.1f} (x{r['smaller_i8']:.2f})",
            "yes" if r["round_trip_same_crops"] and r["round_trip_same_targets"] else "NO",
        ]
        for r in d["rows"]
    ]
    return [
        *section("Labels in and out: the authors' layout at 1,000 classes", cmd),
        f"A folder as their relabel script writes it ({d['batches']} batches of {d['batch']}, simulated logits), "
        "imported with `lpq import` (float16 values: lossless), then quantized to 8-bit values with `lpq quantize`; "
        "then exported with `lpq export` and imported again. Imported files store each batch's crops (28 raw bytes "
        "per sample before compression), which derived files do not need.",
        "",
        table(
            [
                "labels",
                "theirs B/sample",
                "imported f16 B/sample",
                "then i8 B/sample",
                "export + import: same crops and targets",
            ],
            rows,
        ),
        "",
    ]


if __name__ == "__main__":
    main()
