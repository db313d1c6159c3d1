"""`lpq compare`: students side by side, from their run folders: label bytes, compression, top-1 mean +- sd.

A run folder is what `lpq train` writes: one student (``result.json``) or several seeds (``seeds.json`` over
``seed-<s>/``). Compression is computed as `lpq inspect` and `lpq demo` compute it: against every label of the
relabel run as dense float16 (epochs x images x classes x 2 bytes), from the label file the run's config.json
names (unknown when that file is gone). ``plot`` draws top-1 against label bytes, log axis, one point per run
with its sd as an error bar (matplotlib: ``pip install 'lpq[plot]'``).

    lpq compare demo/run-full demo/run-compressed --plot accuracy.png
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from pydantic import BaseModel, Field

from lpq.errors import LpqError
from lpq.files import atomic
from lpq.format.summary import summarize


class CompareConfig(BaseModel):
    runs: list[Path] = Field(min_length=1, description="lpq train output folders")
    plot: Path | None = Field(None, description="a PNG of top-1 against label bytes")


class RunRow(BaseModel):
    run: Path
    labels: Path
    label_bytes: int
    compression: float | None = Field(description="x smaller than every label as dense float16; None: file gone")
    seeds: int
    top1_mean: float = Field(description="final-epoch test top-1, %")
    top1_sd: float = Field(description="sample standard deviation over seeds, points (0 for one seed)")


class CompareResult(BaseModel):
    rows: list[RunRow]
    plot: Path | None = None


def _read(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        raise LpqError("compare-not-a-run", f"{path} is missing or not JSON") from None


def run_row(folder: Path) -> RunRow:
    """One run folder's row (see the module docstring)."""
    if (folder / "seeds.json").is_file():
        doc = _read(folder / "seeds.json")
        top1 = [r["top1"] for r in doc["runs"]]
        config = folder / f"seed-{doc['seeds'][0]}" / "config.json"
    elif (folder / "result.json").is_file():
        doc = _read(folder / "result.json")
        top1 = [doc["top1"]]
        config = folder / "config.json"
    else:
        raise LpqError("compare-not-a-run", f"{folder} holds no finished lpq train run (result.json or seeds.json)")
    labels = Path(_read(config)["labels"])
    first = doc["runs"][0] if "runs" in doc else doc
    return RunRow(
        run=folder,
        labels=labels,
        label_bytes=first["label_bytes"],
        compression=summarize(labels).compression_vs_full if labels.is_file() else None,
        seeds=len(top1),
        top1_mean=statistics.fmean(top1),
        top1_sd=statistics.stdev(top1) if len(top1) > 1 else 0.0,
    )


def compare(cfg: CompareConfig) -> CompareResult:
    rows = [run_row(Path(r)) for r in cfg.runs]
    if cfg.plot is not None:
        plot(rows, cfg.plot)
    return CompareResult(rows=rows, plot=cfg.plot)


def plot(rows: list[RunRow], out: Path) -> Path:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise LpqError("extra-missing", "--plot needs matplotlib", "pip install 'lpq[plot]'") from None
    fig, ax = plt.subplots(figsize=(6, 4))
    for r in rows:
        ax.errorbar(r.label_bytes, r.top1_mean, yerr=r.top1_sd, fmt="o", capsize=3, label=r.run.name)
    ax.set_xscale("log")
    ax.set_xlabel("label bytes (log)")
    ax.set_ylabel("student top-1 (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic(out) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return out
