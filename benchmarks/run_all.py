"""Rerun every benchmark, or only rebuild benchmarks/RESULTS.md and the plot from the saved JSON.

    python benchmarks/run_all.py              # everything, in order; about 16 CPU-hours on 2 cores, resumable
    python benchmarks/run_all.py --render     # only rebuild RESULTS.md and the plot from benchmarks/results/*.json

Order: the Tiny-ImageNet grid (the method's claim at 200 classes), the CIFAR-10 grids and ablation, then the
speed and memory benchmarks. The accuracy runs resume where they stopped; rerun this after an interruption.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
from pathlib import Path

import memory_format
import storage
from accuracy import claim_section
from common import RESULTS, ROOT, pm, section, size, table

PY = sys.executable
STEPS = [
    ["benchmarks/accuracy.py", "--dataset", "tiny", "--claim"],
    ["benchmarks/accuracy.py", "--dataset", "tiny", "--ipc", "10"],
    ["benchmarks/accuracy.py", "--dataset", "cifar10", "--ipc", "10"],
    ["benchmarks/accuracy.py", "--dataset", "cifar10", "--ablation"],
    ["benchmarks/accuracy.py", "--dataset", "cifar10", "--ipc", "10", "--eval-cost"],
    ["benchmarks/accuracy.py", "--dataset", "cifar10", "--ipc", "50", "--cells", "6"],
    ["benchmarks/squeeze.py", "--dataset", "tiny"],
    ["benchmarks/synth.py", "--ipc", "10", "--iterations", "300"],
    ["benchmarks/storage.py", "--json", "benchmarks/results/storage.json"],
    [
        "benchmarks/storage.py",
        "--labels",
        "benchmarks/out/accuracy/tiny/labels-syn-ipc10-full-f32.lpql",
        "--batch",
        "64",
        "--json",
        "benchmarks/results/storage-tiny.json",
    ],
    ["benchmarks/scale.py"],
    ["benchmarks/throughput.py"],
    ["benchmarks/precision.py"],
    ["benchmarks/memory_format.py"],
    ["benchmarks/interop.py"],
]
PUBLISHED_TINY = (  # LPLD paper (NeurIPS 2024), ResNet-18 students at 64 px: their setting, not ours
    "Published on Tiny-ImageNet (LPLD paper, ResNet-18 teacher and students at 64 px, SRe2L images, their "
    "recipe): IPC 50 full labels 449 MB 41.1%, LPLD x40 11 MB 38.4%; IPC 100 full 898 MB 49.7%, LPLD x40 22 MB "
    "46.1%. They answer a different setting (network, resolution, IPC) and are shown for scale only."
)
STORAGE_NOTE = (
    "Bytes are whole-file bytes (header, index, calibration, footer included) per stored sample; the authors' "
    "layout is one `torch.save` list per batch plus the JSON batch map (README, 'The authors' label layout'; "
    "our replica measures close to their 2,034 B full / 75.6 B MR-10 per sample at 1,000 classes, 83.7 B with "
    "the map). Decode is stored batch to dense float32 target at T=4, median of the passes, one thread; 'read "
    "vs torch.load' times the containers alone. 'bound' is their time over the time of what no reader of these "
    "bytes can skip (chunk CRC, zstd, and the dense softmax + scatter both paths share). Entropy is the "
    "zeroth-order empirical entropy of the stored symbols per column; TV is the mean total-variation distance "
    "between the decoded target and the float32 target of the same scheme and k."
)

FULL_GAP_NOTE = (
    "Stored rank-major, as format 1.1 did, the transposing cast into sample-major float32 rows was the whole gap "
    "to the bound (about 0.1 ms of a 0.5 ms batch at 1,000 classes): numpy's strided copy, torch's "
    "`.t().contiguous()`, a gather through a cached permutation, blocked multiplies, a transposed view (it moves "
    "the cost into the softmax and the loss) and Pillow's transpose all cost the same. Full labels' columns are "
    "classes, not ranks, so zstd packs them to the same bytes either way, and 1.2 stores them by sample."
)


def command(*args: str) -> str:
    """The step of STEPS that produced a section, as a reader types it: the shortest one starting with ``args``."""
    step = min((s for s in STEPS if s[: len(args)] == list(args)), key=len)
    return " ".join(["python", *step])


def load_note(d: dict) -> str:
    """How busy the machine was when the result was taken (other jobs slow absolute rates, not ratios)."""
    env = d.get("environment") or d.get("env") or {}
    load = env.get("load_average_1m")
    return "" if load is None else f" (1-minute load average {load:.1f} on the 2 cores when it finished)"


def load(name: str) -> dict | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


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


def versus(a: dict, b: dict) -> tuple[float, float, int]:
    """Top-1 of a minus b, the seeds' combined spread, and the sign of the gap where it exceeds that spread."""
    gap, spread = a["top1_mean"] - b["top1_mean"], math.hypot(a["top1_sd"], b["top1_sd"])
    return gap, spread, (gap > spread) - (gap < -spread)


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


def ablation_section() -> list[str]:
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
            command("benchmarks/accuracy.py", "--dataset", "cifar10", "--ablation"),
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


def reach(r: dict) -> str:
    """How much of the bound a decoder reaches: its speed-up over the authors' against the most any could gain."""
    return f"{r['decode_speedup'] / r['speedup_bound']:.2f} (x{r['decode_speedup']:.1f} of x{r['speedup_bound']:.1f})"


def layout_sentence(rows: list[dict]) -> str:
    """8-bit values in the layout writers choose against the other one, setting by setting."""
    pairs = []
    for setting in dict.fromkeys(r["setting"] for r in rows):
        both = [r for r in rows if r["setting"] == setting and r["values"].startswith("i8")]
        if len(both) == 2:
            w, o = sorted(both, key=lambda r: not r["written"])
            pairs.append(
                f"{setting} `{w['values']}` {w['lpql_bytes_per_sample']:.1f} B, {w['lpql_batches_per_s']:.0f} "
                f"batches/s (`{o['values']}` {o['lpql_bytes_per_sample']:.1f} B, {o['lpql_batches_per_s']:.0f})"
            )
    if not pairs:
        return ""
    return (
        "Layout (format 1.2): writers store full labels and top-k rows of k >= 32 by sample, shorter top-k rows by "
        "rank; each 8-bit row against the other layout (bytes per sample, decode rate): " + "; ".join(pairs) + "."
    )


def storage_section(name: str, title: str, cmd: str) -> list[str]:
    d = load(name)
    if not d:
        return []
    rows = [storage.row_cells(r) for r in d["rows"]]
    checks = "; ".join(f"{k}: {'n/a' if v is None else 'met' if v else 'NOT met'}" for k, v in d["checks"].items())
    full = {r["values"]: r for r in d["rows"] if r["setting"] == "full"}
    reached = (
        [
            f"Full 8-bit labels decode at {reach(full['i8-by-sample'])} of the bound stored by sample, "
            f"{reach(full['i8'])} rank-major. {FULL_GAP_NOTE}",
            "",
        ]
        if {"i8-by-sample", "i8"} <= full.keys()
        else []
    )
    idx = d.get("index_decode")
    indices = (
        [
            f"Class indices (format 1.3): MR-{idx['k']}'s {idx['bits']}-bit indices decode in {idx['split_us']:.1f} us "
            f"per batch stored `split`, as writers store them, against {idx['bitpack_us']:.1f} us `bitpack` (the same "
            "bytes; same rounds as the table).",
            "",
        ]
        if idx
        else []
    )
    return [
        *section(title, cmd),
        table(
            list(storage.COLUMNS),
            rows,
        ),
        "",
        f"Checks: {checks}",
        "",
        *reached,
        layout_sentence(d["rows"]),
        "",
        *indices,
        STORAGE_NOTE,
        "",
    ]


def interop_section() -> list[str]:
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
        *section("Labels in and out: the authors' layout at 1,000 classes", command("benchmarks/interop.py")),
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


def scale_section() -> list[str]:
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
        *section("Streaming at ImageNet shape: memory against the number of images", command("benchmarks/scale.py")),
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
    ]


def throughput_section() -> list[str]:
    d = load("throughput")
    if not d:
        return []
    proj = [r for r in d["projection"] if "stage" in r]
    return [
        *section(
            "Keeping a GPU fed, measured on this CPU (ResNet-18, 224 px, batch 32)", command("benchmarks/throughput.py")
        ),
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


def precision_section() -> list[str]:
    d = load("precision")
    if not d:
        return []
    rows = [
        [
            amp,
            f"{d[amp]['top1_agreement']:.2%}",
            f"{d[amp]['top1_agreement_margin_0.1']:.2%}",
            f"{d[amp]['max_abs_logit_diff']:.3f}",
            f"{d[amp]['mean_abs_logit_diff']:.4f}",
            f"{d[amp]['tv_T4']:.5f}",
        ]
        for amp in ("bf16", "fp16")
    ]
    return [
        *section("Relabel under mixed precision against float32", command("benchmarks/precision.py")),
        table(
            ["autocast", "top-1 agreement", "where margin >= 0.1", "max logit diff", "mean logit diff", "TV at T=4"],
            rows,
        ),
        "",
        f"Tiny-ImageNet teacher on its {d['images']:,} test images with CutMix, {d['classes']} classes: "
        f"{d['near_ties']:.1%} of the samples have a float32 top-2 margin under 0.1 logits (two mixed classes), "
        "and the top-1 changes fall among them (see the agreement where the margin is at least 0.1). bfloat16 "
        "misses the 99% agreement "
        "target; float16 meets it, so `--amp auto` relabels in float16 on CUDA (check: "
        f"{'met' if d['check'] else 'NOT met'}).",
        "",
    ]


def memory_format_section() -> list[str]:
    d = load("memory-format")
    if not d:
        return []
    rows = [memory_format.row_cells(r) for r in d["rows"]]
    slowest = min(r["ratio"] for r in d["rows"])
    return [
        *section("Channels-last memory on CPU", command("benchmarks/memory_format.py")),
        table(list(memory_format.COLUMNS), rows),
        "",
        (
            f"Channels-last is at least x{slowest:.2f} faster in every case measured here, so `Precision` puts "
            "models and batches in it on CPU as on CUDA (it was CUDA-only before)."
            if slowest > 1
            else f"Channels-last is slower in some case here (x{slowest:.2f}): `Precision` should not default to it."
        )
        + " Accuracy rows run before this change used contiguous memory: the same arithmetic in another order, "
        "a difference of the kind a seed makes.",
        "",
    ]


def synth_and_squeeze_sections() -> list[str]:
    parts = []
    sq = load("squeeze-tiny")
    if sq:
        parts += [
            *section(
                "The class-statistics pass (`lpq squeeze`)", command("benchmarks/squeeze.py", "--dataset", "tiny")
            ),
            f"Tiny-ImageNet teacher ({sq['architecture']}, {sq['image_size']} px): statistics pass "
            f"{sq['stats_images_per_s']:.0f} images/s against {sq['forward_images_per_s']:.0f} for the plain forward, "
            f"ratio {sq['stats_rate_ratio']:.2f} (target >= 0.8).",
            "",
        ]
    d = load("synth-ipc10")
    if d:
        modes = [m for m in ("classwise", "mixed") if m in d]
        parts += [
            *section(
                "Synthesis, CIFAR-10 IPC 10: class-wise against mixed (SRe2L) batching",
                f"python benchmarks/synth.py --ipc 10 --iterations {d['iterations']}",
            ),
            table(
                ["batching", "teacher top-1 on images", "within-class cosine", "wall s"],
                [
                    [
                        m,
                        f"{d[m]['teacher_top1']:.1f}%",
                        f"{d[m]['within_class_cosine']:.4f}",
                        f"{d[m]['wall_seconds']:.0f}",
                    ]
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
    return parts


def render() -> str:
    env = next((d["env"] for d in (load("accuracy-tiny-ipc10"), load("storage")) if d and "env" in d), {})
    parts = [
        "# Benchmark results",
        "",
        f"Machine: 2-core x86_64 CPU, 24 GB, no GPU; Python {env.get('python', '3.11')}, torch "
        f"{env.get('torch', '?')} (CPU). Regenerated by `python benchmarks/run_all.py --render` from the JSON each "
        "benchmark wrote; every figure comes from the command named above it.",
        "",
    ]
    parts += claim_section(
        load("accuracy-tiny-ipc10-claim"), command("benchmarks/accuracy.py", "--dataset", "tiny", "--claim")
    )
    parts += grid_section(
        "accuracy-tiny-ipc10",
        "Tiny-ImageNet, IPC 10, the full table",
        command("benchmarks/accuracy.py", "--dataset", "tiny", "--ipc", "10"),
    )
    if load("accuracy-tiny-ipc10"):
        parts += [PUBLISHED_TINY, ""]
    for ipc in (10, 50):
        parts += grid_section(
            f"accuracy-cifar10-ipc{ipc}",
            f"CIFAR-10, IPC {ipc}, the same protocol",
            command("benchmarks/accuracy.py", "--dataset", "cifar10", "--ipc", str(ipc)),
        )
    parts += ablation_section()
    ec = load("accuracy-cifar10-ipc10-evalcost")
    if ec:
        parts += [
            *section(
                "What evaluation costs a default run",
                command("benchmarks/accuracy.py", "--dataset", "cifar10", "--ipc", "10", "--eval-cost"),
            ),
            f"`lpq train` with its defaults on CIFAR-10 IPC 10 full labels ({ec['epochs']} epochs, "
            f"{ec['evaluations']} evaluation{'s' if ec['evaluations'] != 1 else ''} of the 10,000 test images): "
            f"{ec['train_seconds']:.0f} s training, "
            f"{ec['eval_seconds']:.0f} s evaluating, {ec['eval_share']:.1%} of the wall time (target at most "
            "15%).",
            "",
        ]
    if (RESULTS / "accuracy-vs-bytes.png").exists():
        parts += ["## Accuracy against label bytes", "", "![top-1 vs label bytes](results/accuracy-vs-bytes.png)", ""]
    parts += storage_section(
        "storage",
        "Label storage and decode, simulated 1,000-class logits",
        command("benchmarks/storage.py", "--json"),
    )
    parts += storage_section(
        "storage-tiny",
        "Label storage and decode, the Tiny-ImageNet teacher's real logits",
        command("benchmarks/storage.py", "--labels"),
    )
    parts += (
        interop_section()
        + scale_section()
        + throughput_section()
        + precision_section()
        + memory_format_section()
        + synth_and_squeeze_sections()
    )
    return "\n".join(parts)


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
                    ax.errorbar(
                        [c["label_bytes"] / images for c in cells],
                        [c["top1_mean"] for c in cells],
                        yerr=[c["top1_sd"] for c in cells],
                        color=color,
                        marker=marker,
                        linestyle="none",
                        capsize=3,
                        mfc=color if fill else "white",
                        label=f"{family}, {recipe} recipe" if family != "baseline" else cells[0]["name"],
                    )
        ax.set_xscale("log")
        ax.set_xlabel("label bytes per distilled image (log)")
        ax.set_ylabel("student top-1, final epoch (%)")
        ax.set_title(f"{d['dataset']['name']} IPC {d['ipc']} ({d['seeds']} seeds)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(RESULTS / "accuracy-vs-bytes.png", dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--render", action="store_true", help="only rebuild RESULTS.md and the plot")
    args = ap.parse_args()
    if not args.render:
        for step in STEPS:
            print("$ python", " ".join(step), flush=True)
            subprocess.run([PY, *step], cwd=ROOT, check=True)
    plot()
    (Path(__file__).parent / "RESULTS.md").write_text(render() + "\n")


if __name__ == "__main__":
    main()
