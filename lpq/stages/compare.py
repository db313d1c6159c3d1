"""`lpq compare`: students side by side, from their run folders: label bytes, compression, top-1 mean +- sd.

A run folder is what `lpq train` writes: one student (``result.json``) or several seeds (``seeds.json`` over
``seed-<s>/``). Compression is computed as `lpq inspect` and `lpq demo` compute it: against every label of the
relabel run as dense float16 (epochs x images x classes x 2 bytes), from the label file the run's config.json
names (unknown when that file is gone). ``plot`` draws top-1 against label bytes, log axis, one point per run
with its sd as an error bar (matplotlib: ``pip install 'lpq[plot]'``).

Where the baselines were run among the folders compared, each row also carries DD-Ranking's two numbers (Li et
al., 2025), in points of top-1:

- IOR, improvement over random: the row's top-1 minus that of a run on a random real subset (`lpq synth --init
  real --iterations 0`) of the same size, trained with labels of the same kind (scheme, values, pruning, relabel
  epochs) and the same recipe (every training setting but the images, labels, seed and where things lie);
- HLR, hard-label recovery: the student architecture's top-1 on the full real data with hard labels minus its
  top-1 on the row's images with hard labels (a run with ``--targets hard`` on the same images). The first comes
  from ``real_top1``, else from the images' teacher when it has the student's architecture and was trained by
  `lpq squeeze` on the real data (its test top-1). Lower is better: the images alone recover more.

    lpq compare demo/run-full demo/run-compressed --plot accuracy.png
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, Field

from lpq.artifacts.manifest import read_manifest
from lpq.configs.compare import CompareConfig
from lpq.configs.train import RUN_ONLY
from lpq.data import folder_of
from lpq.errors import LpqError
from lpq.files import atomic
from lpq.format.summary import summarize


class RunRow(BaseModel):
    run: Path
    labels: Path
    label_bytes: int
    compression: float | None = Field(description="x smaller than every label as dense float16; None: file gone")
    seeds: int
    top1_mean: float = Field(description="final-epoch test top-1, %")
    top1_sd: float = Field(description="sample standard deviation over seeds, points (0 for one seed)")
    images: str = Field("data", description="synthetic, random real (a real subset through synth), or data")
    targets: str = "soft"
    ior: float | None = Field(None, description="improvement over the random real subset, points (module docstring)")
    hlr: float | None = Field(None, description="hard-label recovery, points; lower is better (module docstring)")


class CompareResult(BaseModel):
    rows: list[RunRow]
    plot: Path | None = None


def _read(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        raise LpqError("compare-not-a-run", f"{path} is missing or not JSON") from None


# Settings that say where a run lies or how fast it ran, not what it trained: two runs that differ only in these
# (and in their images, labels and seed) were trained alike.
_PLACE = RUN_ONLY | {"images", "labels", "eval_data", "root", "seed"}


@dataclass(frozen=True)
class _Run:
    row: RunRow
    images: str  # the images as config.json records them
    model: str
    recipe: str  # the training settings but _PLACE, as canonical JSON
    labels: tuple[object, ...] | None  # the labels' kind (scheme, values, pruning, epochs, images); None: file gone


def _run(folder: Path) -> _Run:
    """One run folder's row (see the module docstring), without IOR and HLR, and what matching it needs."""
    if (folder / "seeds.json").is_file():
        doc = _read(folder / "seeds.json")
        top1 = [r["top1"] for r in doc["runs"]]
        config = _read(folder / f"seed-{doc['seeds'][0]}" / "config.json")
    elif (folder / "result.json").is_file():
        doc = _read(folder / "result.json")
        top1 = [doc["top1"]]
        config = _read(folder / "config.json")
    else:
        raise LpqError("compare-not-a-run", f"{folder} holds no finished lpq train run (result.json or seeds.json)")
    labels = Path(config["labels"])
    summary = summarize(labels) if labels.is_file() else None
    first = doc["runs"][0] if "runs" in doc else doc
    row = RunRow(
        run=folder,
        labels=labels,
        label_bytes=first["label_bytes"],
        compression=summary.compression_vs_full if summary else None,
        seeds=len(top1),
        top1_mean=statistics.fmean(top1),
        top1_sd=statistics.stdev(top1) if len(top1) > 1 else 0.0,
        images=images_kind(config["images"]),
        targets=config.get("targets", "soft"),
    )
    recipe = json.dumps({k: v for k, v in config.items() if k not in _PLACE}, sort_keys=True)
    kind = None
    if summary is not None:
        h = summary.header
        kind = (h.quant.name, h.quant.values.id, round(h.prune.ratio, 6), h.relabel.epochs, h.images.count)
    return _Run(row, str(config["images"]), str(config.get("model", "convnet")), recipe, kind)


def images_kind(images: str) -> str:
    """What a run trained on: synthetic images, a random real subset (synth with --init real and no iterations),
    or data that no lpq synth made."""
    folder = folder_of(images)
    manifest = read_manifest(folder) if folder is not None else None
    if manifest is None:
        return "data"
    settings = manifest.settings
    return "random real" if settings.get("init") == "real" and not settings.get("iterations") else "synthetic"


def real_hard_top1(images: str, model: str) -> float | None:
    """The student architecture's top-1 on the full real data with hard labels, where the images' teacher is that:
    trained by lpq squeeze (not loaded from weights) with the student's architecture."""
    from lpq.artifacts.teacher import load_teacher  # torch: only where an HLR is asked for

    folder = folder_of(images)
    manifest = read_manifest(folder) if folder is not None else None
    if manifest is None or not Path(manifest.teacher).is_file():
        return None
    meta = load_teacher(manifest.teacher, need_stats=False).meta
    trained = meta.training.get("epochs") and not meta.training.get("weights")
    return meta.test_top1 if trained and meta.architecture == model else None


def dd_ranking(runs: list[_Run], real_top1: float | None = None) -> list[RunRow]:
    """The runs' rows with IOR and HLR filled in where their baselines are among them (module docstring)."""
    out = []
    for run in runs:
        ior = hlr = None
        if run.row.images != "random real" and run.labels is not None:
            random = [
                o for o in runs if o.row.images == "random real" and (o.labels, o.recipe) == (run.labels, run.recipe)
            ]
            ior = run.row.top1_mean - random[0].row.top1_mean if random else None
        hard = [o for o in runs if o.images == run.images and o.row.targets == "hard"]
        if hard:
            reference = real_top1 if real_top1 is not None else real_hard_top1(run.images, hard[0].model)
            hlr = None if reference is None else reference - hard[0].row.top1_mean
        out.append(run.row.model_copy(update={"ior": ior, "hlr": hlr}))
    return out


def compare(cfg: CompareConfig) -> CompareResult:
    rows = dd_ranking([_run(Path(r)) for r in cfg.runs], cfg.real_top1)
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
