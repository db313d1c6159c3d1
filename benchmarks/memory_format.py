"""Channels-last against contiguous (NCHW) memory on this CPU, side by side, for the three kinds of model work.

Claim (why `Precision.memory_format` is channels-last on every device): oneDNN's convolutions run faster on
NHWC tensors on CPU too, for the distillation ConvNet at 32 px (batch 64, and 10: one class of class-wise
synthesis) and ResNet-18 at 224 px, in the student's training step (forward + backward + AdamW), the relabel
forward (no gradients) and the synthesis step (gradients to the input pixels). Printed: steps/s of each
format, median over alternating timed runs, and the ratio channels-last / contiguous (> 1: faster).

    python benchmarks/memory_format.py     # about 3 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from common import RESULTS, environment, load, section, table
from rich.console import Console
from rich.table import Table

from lpq.models import build_model

CASES = [("convnet", 32, 64, 200), ("convnet", 32, 10, 200), ("resnet18", 224, 32, 1000)]  # model, size, batch, classes


COLUMNS = ("model", "px", "batch", "work", "contiguous steps/s", "channels-last steps/s", "ratio")


def row_cells(r: dict) -> list[str]:
    """One result row as printed here and in RESULTS.md (benchmarks/run_all.py), in COLUMNS order."""
    return [
        r["model"],
        str(r["image_size"]),
        str(r["batch"]),
        r["work"],
        f"{r['contiguous_steps_per_s']:.2f}",
        f"{r['channels_last_steps_per_s']:.2f}",
        f"x{r['ratio']:.2f}",
    ]


def work(kind: str, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> Callable[[], None]:
    if kind == "train":
        opt = torch.optim.AdamW(model.parameters(), 1e-3)

        def step() -> None:
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        return step
    if kind == "relabel":

        @torch.no_grad()
        def forward() -> None:
            model(x)

        return forward
    pixels = x.clone().requires_grad_(True)
    opt = torch.optim.Adam([pixels], 0.1)
    for p in model.parameters():
        p.requires_grad_(False)

    def synth() -> None:
        loss = F.cross_entropy(model(pixels), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return synth


def setup(kind: str, name: str, size: int, batch: int, classes: int, fmt: torch.memory_format) -> Callable[[], None]:
    torch.manual_seed(0)
    model = build_model(name, classes, size).to(memory_format=fmt)
    model.train(kind != "relabel")
    x = torch.randn(batch, 3, size, size).contiguous(memory_format=fmt)
    y = torch.randint(0, classes, (batch,))
    return work(kind, model, x, y)


def timed(fn: Callable[[], None], steps: int) -> float:
    t = time.perf_counter()
    for _ in range(steps):
        fn()
    return steps / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=5, help="alternating timed runs per format")
    ap.add_argument("--json", type=Path, default=RESULTS / "memory-format.json")
    args = ap.parse_args()
    rows = []
    for name, size, batch, classes in CASES:
        steps = max(2, round(2 * 64 * 32 * 32 / (batch * size * size)) * 4)  # roughly equal seconds per case
        for kind in ("train", "relabel", "synth"):
            fns = {
                fmt_name: setup(kind, name, size, batch, classes, fmt)
                for fmt_name, fmt in (("contiguous", torch.contiguous_format), ("channels_last", torch.channels_last))
            }
            for fn in fns.values():
                fn()  # warm-up: oneDNN picks its kernels on the first call
            rates: dict[str, list[float]] = {k: [] for k in fns}
            for _ in range(args.rounds):
                for k, fn in fns.items():
                    rates[k].append(timed(fn, steps))
            med = {k: statistics.median(v) for k, v in rates.items()}
            rows.append(
                {
                    "model": name,
                    "image_size": size,
                    "batch": batch,
                    "work": kind,
                    "contiguous_steps_per_s": med["contiguous"],
                    "channels_last_steps_per_s": med["channels_last"],
                    "ratio": med["channels_last"] / med["contiguous"],
                }
            )
    table = Table(title=f"channels-last / contiguous on CPU ({torch.get_num_threads()} threads)")
    for col in COLUMNS:
        table.add_column(col, justify="left" if col in ("model", "work") else "right")
    for r in rows:
        table.add_row(*row_cells(r))
    Console().print(table)
    args.json.write_text(json.dumps({"env": environment(), "rows": rows}, indent=2))


# RESULTS.md: this benchmark's section, rendered from its JSON (benchmarks/run_all.py --render).


def results_section(cmd: str) -> list[str]:
    d = load("memory-format")
    if not d:
        return []
    rows = [row_cells(r) for r in d["rows"]]
    slowest = min(r["ratio"] for r in d["rows"])
    return [
        *section("Channels-last memory on CPU", cmd),
        table(list(COLUMNS), rows),
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


if __name__ == "__main__":
    main()
