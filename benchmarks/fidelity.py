"""How right each label code stays at every temperature, at equal bytes, without training a student.

For each code and each budget (x40, x100, x200, x500 of the full 8-bit labels, counting pruning and bytes per
stored view together), how far the code's target is from the full float32 target: the KL divergence KL(full ||
code) (infinite where a code puts no mass on a class the teacher gives some, as MR-k does outside its top k),
the total-variation distance (the share of probability mass in the wrong place, 0 to 1), and the share of
views whose top-1 class agrees, at every temperature a 100-epoch DKR run visits (20 down to 2, step schedule),
on real teacher logits read from a float32 label file of full logits (pruned or not: a pruned file's views are
drawn from the same run, whole epochs at a time).

Budgets are met the way LPQLD meets them: pruning x10 (the authors' setting at x40), the rest per stored view:
x40 leaves each view 1/4 of a full 8-bit label, x100 1/10, x200 1/20, x500 1/50. A code gets the largest k whose
raw bytes per view fit (values and row scale as the 8-bit relative codec stores them, class indices as the
file's index codec does: spec sections 5.1-5.2; zstd, which shrinks every code a little, is left out); tail
tries 2, 4 and 8 points (each with the largest k that fits), sampled the proposal temperatures 1, 2 and 4, and
each keeps the one of least mean total variation over the temperatures. Pruning's own cost (fewer views) is
invisible here: students measure it.

Codes: mr (MR-k, LPQLD), ms (FKD's marginal smoothing: the top-k probabilities at T = 1, the rest spread
evenly), tail (top-k logits and points of the sorted rest, spec 1.5), sampled (k classes drawn at a proposal
temperature T_p, importance-weighted, spec 1.5), basis (top-k logits and r coefficients on the file's basis of
the logits, spec 1.6: ranks 0, 2, 4, 8 and 16, the basis's own bytes shared by the stored views; fitted on other
views than those measured, as a file's basis is fitted on a sample and used on every view). Each is encoded and
decoded through the real codecs, so 8-bit rounding counts.
Every distance is per view: sampled's error is variance, which averages out over the many views of an image a
student sees and which a per-view distance counts in full (only students can credit it).

    python benchmarks/fidelity.py --frontier tiny-lite0   # EfficientNet-Lite0's logits of the frontier's x10
    python benchmarks/fidelity.py --frontier tiny         # the 32 px ConvNet's (teacher and relabel made if missing)
    python benchmarks/fidelity.py --labels my-full-f32-labels.lpql --name fidelity-mine
"""

from __future__ import annotations

import argparse
from pathlib import Path

import accuracy
import numpy as np
from common import RESULTS, ROOT, load, section, table, write_result

from lpq.format import LpqlReader, TempSchedule
from lpq.method.fidelity import CODES, Room, fits, measure, view_bytes, widest_basis
from lpq.method.temperature import schedule_temperatures

BUDGETS = (40, 100, 200, 500)
PRUNE = 10  # the authors' pruning at x40; the rest of every budget is per view


def views(path: Path, count: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Full logits of ``count`` stored views from batches drawn at random, of up to ``count`` views from other
    batches (what a basis is fitted on), and the views the file holds."""
    with LpqlReader(path) as r:
        if r.header.quant.scheme != "none":
            raise SystemExit(f"{path} holds {r.header.quant.name} labels: fidelity needs the full logits")
        order = np.random.default_rng(0).permutation(r.batch_ids)
        half = len(order) // 2
        parts = [np.concatenate([r.read(int(b)).values for b in ids]) for ids in (order[:half], order[half:])]
        total = sum(r.samples(int(b)) for b in r.batch_ids) * r.header.prune.ratio
        return parts[0][:count].astype(np.float32), parts[1][:count].astype(np.float32), int(total)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = ap.add_mutually_exclusive_group(required=True)
    source.add_argument("--labels", type=Path, help="a full float32 label file (real teacher logits)")
    source.add_argument(
        "--frontier", choices=sorted(accuracy.FRONTIER_TEACHERS), help="accuracy.py --frontier's x10 logits"
    )
    ap.add_argument("--views", type=int, default=4096)
    ap.add_argument("--name", default=None, help="result name (default: fidelity-<frontier or labels' folder>)")
    args = ap.parse_args()
    path = args.labels or accuracy.frontier_logits(args.frontier)
    logits, held_out, total = views(path, args.views)
    c = logits.shape[1]
    widest = widest_basis(held_out)  # each basis code is measured on its first rows
    temps = [t for t in schedule_temperatures(TempSchedule(kind="step"), 100) if t >= 2.0]
    rows = []
    for budget in BUDGETS:
        for code in CODES:
            tried = [
                {"code": q.name + (f" T_p={q.sample_temperature:g}" if q.sample_temperature else ""),
                 "view_bytes": view_bytes(q, c),
                 **measure(logits, q, temps, None if q.rank is None else widest.first(q.rank))}
                for q in fits(code, c, Room(budget, PRUNE, stored=total / PRUNE))
            ]  # fmt: skip
            if not tried:
                continue
            row = {"budget": budget, **min(tried, key=lambda r: float(np.mean(r["tv"])))}
            rows.append(row)
            print(f"x{budget} {row['code']}: {row['view_bytes']} B/view, total variation at T=2 {row['tv'][-1]:.4f}, "
                  f"at T=20 {row['tv'][0]:.4f}", flush=True)  # fmt: skip
    name = args.name or f"fidelity-{args.frontier or path.parent.name}"
    shown = path.resolve().relative_to(ROOT) if path.resolve().is_relative_to(ROOT) else path
    write_result(name, {"labels": str(shown), "classes": c, "views": len(logits), "temperatures": temps, "rows": rows})
    plot(name)


def plot(name: str) -> Path | None:
    d = load(name)
    if not d:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(BUDGETS), figsize=(4 * len(BUDGETS), 3.4), sharey=True)
    for ax, budget in zip(axes, BUDGETS):
        for r in (r for r in d["rows"] if r["budget"] == budget):
            ax.plot(d["temperatures"], r["tv"], marker="o", ms=3, label=f"{r['code']} ({r['view_bytes']} B)")
        ax.set_xscale("log")
        ax.set_title(f"x{budget}")
        ax.set_xlabel("temperature T")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    axes[0].set_ylabel("total variation from the full target")
    fig.tight_layout()
    out = RESULTS / f"{name}.png"
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


# RESULTS.md: this benchmark's section, rendered from its JSON (benchmarks/run_all.py --render).


def results_section(name: str, cmd: str, teacher: str) -> list[str]:
    """RESULTS.md's table for one teacher's logits (``name``: the result fidelity.py wrote), with its sentences."""
    d = load(name)
    if not d:
        return []
    temps = d["temperatures"]
    shown = [temps.index(t) for t in sorted({temps[0], temps[len(temps) // 2], temps[-1]}, reverse=True)]

    def kl(v: float | None) -> str:
        return "inf" if v is None else f"{v:.3g}"

    header = [
        "budget",
        "code",
        "bytes/view",
        *(f"TV T={temps[i]:g}" for i in shown),
        *(f"KL T={temps[i]:g}" for i in shown),
        "top-1 agree T=2",
    ]
    rows = [
        [f"x{r['budget']}", r["code"], f"{r['view_bytes']} B", *(f"{r['tv'][i]:.3f}" for i in shown),
         *(kl(r["kl"][i]) for i in shown), f"{100 * r['top1_agreement'][-1]:.1f}%"]
        for r in d["rows"]
    ]  # fmt: skip
    lines = []
    for budget in BUDGETS:
        at = [r for r in d["rows"] if r["budget"] == budget]
        if not at:
            continue
        best = min(at, key=lambda r: float(np.mean(r["tv"])))
        mr = next((r for r in at if r["code"].startswith("mr")), None)
        lines.append(
            f"x{budget}: {best['code']} ({best['view_bytes']} B/view) misplaces {100 * best['tv'][-1]:.1f}% of the "
            f"target's mass at T = 2 and {100 * best['tv'][0]:.1f}% at T = 20"
            + (
                f"; {mr['code']}: {100 * mr['tv'][-1]:.1f}% and {100 * mr['tv'][0]:.1f}%."
                if mr and mr is not best
                else "."
            )
        )
    return [
        *section(f"Label fidelity at equal bytes, {teacher}: {d['classes']} classes, {d['views']:,} real views", cmd),
        f"Labels: `{d['labels']}`. Pruning x{PRUNE}, the rest of each budget per view (benchmarks/fidelity.py "
        "docstring). TV: total variation of each code's target from the full float32 target (the share of "
        "probability mass in the wrong place); KL(full || code) in nats, inf where the code gives a class no "
        "mass that the teacher gives some (MR-k outside its top k); at the temperatures a 100-epoch step "
        "schedule visits. Distances are per view: sampled labels' error is variance that averages out over the "
        "views a student sees, which a per-view distance counts in full.",
        "",
        table(header, rows),
        "",
        *lines,
        "",
        f"![Total variation against temperature]({Path('results') / (name + '.png')})",
        "",
    ]


if __name__ == "__main__":
    main()
