"""`lpq inspect`: what a `.lpql` file holds and where its bytes go."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import typer
from pydantic import BaseModel
from rich.table import Table

from lpq.cli.common import command, funnel, print_json, stdout
from lpq.cli.options import JsonOpt, QuietOpt
from lpq.configs.inspect import InspectConfig
from lpq.format import Calibration, LpqlReader
from lpq.format.summary import FileSummary, summarize


class BatchView(BaseModel):
    batch_id: int
    epoch: int
    batch: int
    size: int
    mix_lambda: float
    mix_box: tuple[int, int, int, int]
    image_indices: list[int]
    crops: list[tuple[int, int, int, int]] | None
    flips: list[bool] | None
    top_classes: list[list[int]]
    top_values: list[list[float]]


def batch_view(path: Path, batch_id: int, show: int = 5) -> BatchView:
    with LpqlReader(path) as r:
        rec = r.read(batch_id)
        h = r.header
        aug = None
        if h.images.height and h.images.width:
            aug = r.augment(rec, np.full((rec.size, 2), (h.images.height, h.images.width)))
        order = np.argsort(-rec.values, axis=1, kind="stable")[:, :show]
        classes = order if rec.indices is None else np.take_along_axis(rec.indices, order, axis=1)
        return BatchView(
            batch_id=batch_id,
            epoch=rec.epoch,
            batch=rec.batch,
            size=rec.size,
            mix_lambda=rec.mix_lambda,
            mix_box=rec.mix_box,
            image_indices=r.image_indices(rec).tolist(),
            crops=None if aug is None else [tuple(map(int, row[:4])) for row in aug.table()],
            flips=None if aug is None else aug.flip.tolist(),
            top_classes=classes.tolist(),
            top_values=np.take_along_axis(rec.values, order, axis=1).round(4).tolist(),
        )


@funnel
@command(InspectConfig)
def inspect(ctx: typer.Context, cfg: InspectConfig, quiet: QuietOpt = False, json_out: JsonOpt = False) -> None:
    """Summarize a label file: header, batches stored, bytes per sample by role, compression, calibration.

    Example:

        lpq inspect labels.lpql --verify
    """
    if cfg.batch is not None:
        view = batch_view(cfg.file, cfg.batch)
        print_json(view) if json_out else _render_batch(view)
        return
    summary = summarize(cfg.file, verify=cfg.verify)
    print_json(summary) if json_out else _render_summary(summary)


def _table(title: str, rows: list[tuple[str, str]]) -> Table:
    t = Table(title=title, show_header=False, title_justify="left")
    t.add_column(style="bold")
    t.add_column()
    for k, v in rows:
        t.add_row(k, v)
    return t


def _render_summary(s: FileSummary) -> None:
    h, out, p = s.header, stdout(), s.per_sample
    out.print(
        _table(
            f"{s.path}",
            [
                ("format", f".lpql {s.format_version} (written by {h.tool})"),
                ("classes", f"{h.num_classes}: {', '.join(h.class_names[:6])}{' ...' if h.num_classes > 6 else ''}"),
                (
                    "images",
                    f"{h.images.count} ({h.images.height}x{h.images.width}), fingerprint {h.images.fingerprint[:16]}",
                ),
                ("teacher", f"{h.teacher.architecture}, weights {h.teacher.weights_sha256[:16]}"),
                ("verified", "every checksum holds" if s.verified else "not checked (pass --verify)"),
            ],
        )
    )
    a, r, pr, q, cov = h.augment, h.relabel, h.prune, h.quant, s.coverage
    out.print(
        _table(
            "Relabel and pruning",
            [
                ("epochs x batches", f"{r.epochs} x {r.batches_per_epoch} of {r.batch_size} (seed {r.seed})"),
                ("batches stored", f"{s.batches_stored} of {s.batches_total} ({s.samples_stored} samples)"),
                ("pruning", f"x{pr.ratio:g}, {pr.strategy} (seed {pr.seed})"),
                (
                    "coverage",
                    f"{cov.never} images never labelled, {cov.once} once, {cov.twice_or_more} twice or more; "
                    f"views per image {cov.min_views} to {cov.max_views} (mean {cov.mean_views:.2f})",
                ),
                (
                    "augmentation",
                    f"crop {a.input_size}px scale {a.crop_scale} ratio {tuple(round(x, 3) for x in a.crop_ratio)}, "
                    f"{a.interpolation}, flip {a.flip_p}, {a.mix} alpha {a.mix_alpha}",
                ),
                (
                    "quantization",
                    f"{q.name}, values {q.values.id}{' relative' if q.values.relative else ''}"
                    + (f", indices {q.indices.id} {q.indices.bits} bits" if q.indices else ""),
                ),
            ],
        )
    )
    t = Table(title="Bytes per stored sample", title_justify="left")
    for col in ("labels", "indices", "augmentation", "overhead", "total"):
        t.add_column(col, justify="right")
    t.add_row(*(f"{v:.2f}" for v in (p.labels, p.indices, p.augmentation, p.overhead, p.total)))
    out.print(t)
    out.print(
        _table(
            "Size",
            [
                ("file", f"{s.file_bytes:,} bytes"),
                ("full float16 labels", f"{s.full_f16_bytes:,} bytes (every sample of every epoch)"),
                (
                    "compression",
                    f"x{s.compression_vs_full:.1f} vs full, "
                    f"x{s.compression_vs_stored:.1f} vs float16 of the stored batches",
                ),
            ],
        )
    )
    if s.calibration is not None:
        out.print(_calibration_table(s.calibration))
        if s.calibration.overall.kept_mass:
            out.print(kept_mass_table(s.calibration))


def _calibration_table(c: Calibration) -> Table:
    """What the labels' own logits recommend: their statistics, the teacher schedule and the student temperature."""
    ts, st = c.teacher_schedule, c.student
    rows = [
        ("top-1 logit", f"{c.overall.top1_logit:.3f}"),
        ("top1-top2 margin", f"{c.overall.margin:.3f}"),
        ("entropy at T=1", f"{c.overall.entropy:.3f} nats"),
        (
            f"top-{c.topk} mass by T",
            ", ".join(f"T={t}: {m:.3f}" for t, m in c.overall.topk_mass.items())
            or "unknown (not measured on the full logits)",
        ),
        (
            "teacher schedule",
            f"{ts.kind} from {ts.start:g}, x{ts.factor:g} every {ts.every} epochs, floor {ts.floor:g}",
        ),
        (
            "student temperature",
            f"{'calibrated' if st.calibrate else 'fixed'}, start {st.initial:g}, "
            f"grid {st.grid_min:g}..{st.grid_max:g} ({st.grid_points})",
        ),
    ]
    return _table("Calibration", rows)


def kept_mass_table(c: Calibration) -> Table:
    """Softmax mass the top k keep (from the full logits), at the DKR schedule's start and end and at T=1."""
    ts = c.teacher_schedule
    temps = [f"{t:g}" for t in c.temperatures]
    wanted = [
        (f"T={ts.start:g} (schedule start)", f"{ts.start:g}"),
        (f"T={ts.floor:g} (schedule end)", f"{ts.floor:g}"),
        ("T=1 (teacher as is)", "1"),
    ]
    columns = [(title, temps.index(key)) for title, key in wanted if key in temps]
    t = Table(title="Softmax mass kept by the top k (full logits, mean over stored samples)", title_justify="left")
    t.add_column("k", justify="right")
    for title, _ in columns:
        t.add_column(title, justify="right")
    for k, row in sorted(c.overall.kept_mass.items(), key=lambda kv: int(kv[0])):
        t.add_row(f"{k}{' (this file)' if int(k) == c.topk else ''}", *(f"{row[j]:.3f}" for _, j in columns))
    return t


def _render_batch(v: BatchView) -> None:
    out = stdout()
    out.print(
        f"batch {v.batch_id}: epoch {v.epoch}, batch {v.batch}, {v.size} samples, "
        f"mix lambda {v.mix_lambda:.4f}, box {v.mix_box}"
    )
    t = Table(title_justify="left")
    for col in ("sample", "image", "crop (top, left, h, w)", "flip", "top classes", "values"):
        t.add_column(col)
    for i in range(v.size):
        t.add_row(
            str(i),
            str(v.image_indices[i]),
            str(v.crops[i]) if v.crops else "-",
            str(v.flips[i]) if v.flips else "-",
            " ".join(map(str, v.top_classes[i])),
            " ".join(f"{x:.3f}" for x in v.top_values[i]),
        )
    out.print(t)
