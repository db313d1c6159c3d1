"""Top-k label quantization (LPQLD stage 5; README, "The method"): MR-k and MS-k, and re-quantizing a file.

MR-k keeps the k largest pre-softmax logits and their classes; training re-normalizes over them at its
current temperature. MS-k (FKD's marginal smoothing) keeps the k largest probabilities and spreads the
rest evenly. Re-quantizing can only lose information: to a smaller k, or to coarser values.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
from pydantic import BaseModel, Field

from lpq.configs.quantize import QuantizeConfig
from lpq.errors import LpqError
from lpq.files import check_paths
from lpq.format import Basis, Calibration, Header, LpqlReader, LpqlWriter, Prune, Quant, TempSchedule
from lpq.format.coverage import members_of
from lpq.format.header import DEFAULT_KEEP, ValueKind
from lpq.format.summary import overhead
from lpq.method.fidelity import (
    BUDGET_VIEWS,
    CODES,
    BudgetChoice,
    budget_codes,
    choose_plan,
    sample_batches,
    sample_views,
    visited,
)
from lpq.method.pruning import prune_more
from lpq.method.temperature import for_k, kept_mass, middle_temperature
from lpq.method.topk import check_top_k, chosen_k, encode, fit_basis


class QuantizeResult(BaseModel):
    output: Path
    scheme: str
    k: int
    kept_mass: float | None = Field(description="mean softmax mass inside the top k at at_temp (None: unknown)")
    at_temp: float
    values: str
    file_bytes_before: int
    file_bytes_after: int
    choice: BudgetChoice | None = None


def check_requantize(src: Quant, quant: Quant) -> None:
    """Refuse conversions that would need information the stored labels no longer hold."""
    if src.scheme == "none":
        return
    if quant.scheme != src.scheme:
        raise LpqError(
            "quantize-lost",
            f"cannot turn {src.name} labels into {quant.scheme}",
            "the logits outside the stored top-k are gone; quantize the full-label file instead",
        )
    same_code = quant.name == src.name and quant.sample_temperature == src.sample_temperature
    if src.scheme in ("tail", "sampled", "basis") and not same_code:
        raise LpqError(
            "quantize-lost",
            f"cannot turn {src.name} labels into {quant.name}: only their value encoding can change (a tail's curve "
            "was sampled for the classes outside its top k; draws are not a top-k to cut)",
            "quantize the full-label file instead",
        )
    if quant.k > src.k:
        raise LpqError(
            "quantize-lost",
            f"cannot raise k from {src.k} to {quant.k}: the other classes were not stored",
            "quantize the full-label file instead",
        )
    if quant.ms_temperature != src.ms_temperature:
        raise LpqError("quantize-lost", "MS probabilities cannot be re-tempered without the full logits")


def requantize(
    values: np.ndarray,
    indices: np.ndarray | None,
    src: Quant,
    quant: Quant,
    seed: list[int],
    basis: Basis | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Stored labels of one batch under the quantization `check_requantize` accepted; ``seed`` as relabel's;
    ``basis``: the output's, for scheme basis."""
    if src.scheme == "none":
        return encode(values, quant, seed, basis)
    if src.scheme in ("tail", "sampled", "basis"):  # the same code: only the values' encoding changes
        return values, indices
    return values[:, : quant.k], None if indices is None else indices[:, : quant.k]


def mean_kept_mass(reader: LpqlReader, temperatures: list[float]) -> np.ndarray:
    """(C, T): the mean over stored samples of the softmax mass inside the top k at each temperature, for
    k = 1..C (full labels)."""
    ks = list(range(1, reader.header.num_classes + 1))
    total = np.zeros((len(ks), len(temperatures)))
    count = 0
    for bid in reader.batch_ids:
        values = reader.read(int(bid)).values
        total += kept_mass(values, temperatures, ks).sum(axis=0)
        count += len(values)
    return total / count


def choose_k(reader: LpqlReader, keep: float, temperature: float) -> tuple[int, float]:
    """The smallest k whose mean kept mass at ``temperature`` reaches ``keep``: exact from full logits, else from
    the calibration's kept-mass table (k up to the file's own)."""
    h, cal = reader.header, reader.calibration
    if h.quant.scheme == "none":
        masses = mean_kept_mass(reader, [temperature])[:, 0]
        k = int(np.argmax(masses >= keep - 1e-12)) + 1
        return k, float(masses[k - 1])
    key = f"{temperature:g}"
    if cal is None or key not in (f"{t:g}" for t in cal.temperatures):
        raise LpqError(
            "quantize-auto-unknown",
            f"{reader.path} stores top-{h.quant.k} labels and no kept mass at T={key}",
            "choose k from the full-label file, or pass --at-temp with a calibration temperature",
        )
    j = [f"{t:g}" for t in cal.temperatures].index(key)
    for k in sorted(int(v) for v in cal.overall.kept_mass if int(v) <= h.quant.k):
        if cal.overall.kept_mass[str(k)][j] >= keep:
            return k, cal.overall.kept_mass[str(k)][j]
    raise LpqError(
        "quantize-lost",
        f"top-{h.quant.k} labels keep less than {keep:g} of the mass at T={key}",
        "quantize the full-label file instead",
    )


def choose_for_budget(
    reader: LpqlReader, budget: float, values: ValueKind, schedule: TempSchedule, codes: tuple[str, ...] = CODES
) -> tuple[BudgetChoice, Quant, Prune]:
    """`lpq.method.fidelity.choose_plan` among ``codes`` on a sample of the file's views, over the temperatures its
    DKR schedule visits, and the file's pruning after it (pruned further, as lpq prune would with its defaults,
    where the budget chose more)."""
    h = reader.header
    if h.quant.scheme != "none":
        raise LpqError(
            "quantize-budget-full",
            f"{reader.path} stores {h.quant.name} labels: --budget measures codes against the full logits",
            "pass the full-label file (lpq relabel without --top-k)",
        )
    logits = sample_views(reader, BUDGET_VIEWS)
    views = sum(reader.samples(int(b)) for b in reader.batch_ids)
    temps = visited(schedule, h.relabel.epochs)
    spent = overhead(reader)
    choice, quant = choose_plan(logits, budget, h.prune.ratio, temps, spent, views, len(h.prune.kept), values, codes)
    step = choice.pruning / h.prune.ratio
    pruned = h.prune if step == 1 else prune_more(h, step, DEFAULT_KEEP, 0, members_of(h, reader))
    return choice, quant, pruned


def quantize_file(cfg: QuantizeConfig) -> QuantizeResult:
    """Write the re-quantized file (a smaller k or coarser values only: information is never invented)."""

    check_paths(cfg.labels, cfg.output)
    scheme, values, ms_temp = cfg.scheme or "mr", cfg.values, cfg.ms_temp
    with LpqlReader(cfg.labels) as r:
        h = r.header
        c = h.num_classes
        schedule = r.calibration.teacher_schedule if r.calibration else TempSchedule()
        at_temp = cfg.at_temp if cfg.at_temp is not None else middle_temperature(schedule)
        choice, pruned = None, h.prune
        if cfg.budget is not None:
            choice, quant, pruned = choose_for_budget(r, cfg.budget, values, schedule, budget_codes(cfg.scheme))
            scheme, k, mass = quant.scheme, quant.k, None
        else:
            if cfg.top_k == "auto":
                k, mass = choose_k(r, cfg.keep_mass, at_temp)
            else:
                k, mass = chosen_k(scheme, cfg.top_k, c), None
            check_top_k(scheme, k, c, cfg.tail_points)
            quant = Quant.of(scheme, k, values, c, ms_temp, cfg.tail_points, cfg.sample_temp, cfg.rank)
        if scheme == "none" and h.quant.scheme != "none":
            raise LpqError("quantize-lost", "top-k labels cannot become full labels again")
        check_requantize(h.quant, quant)
        header = h.model_copy(update={"quant": quant, "prune": pruned})
        calibration = None if r.calibration is None else _recalibrated(r, r.calibration, k)
        basis = _basis_of(r, header)
        writer = LpqlWriter(cfg.output, header, basis=basis)
        try:
            for bid in pruned.kept:
                rec = r.read(int(bid))
                seed = [h.relabel.seed, rec.epoch * h.relabel.batches_per_epoch + rec.batch]
                vals, idx = requantize(rec.values, rec.indices, h.quant, quant, seed, basis)
                writer.add(dataclasses.replace(rec, values=vals.astype(np.float32), indices=idx))
            writer.finish(calibration)
        except BaseException:
            writer.discard()
            raise
        before = r.size
        if mass is None and calibration is not None and calibration.overall.topk_mass:
            mass = calibration.overall.topk_mass.get(f"{at_temp:g}")
    return QuantizeResult(
        output=cfg.output,
        scheme=scheme,
        k=k,
        kept_mass=mass,
        at_temp=at_temp,
        values=values,
        file_bytes_before=before,
        file_bytes_after=cfg.output.stat().st_size,
        choice=choice,
    )


def _basis_of(reader: LpqlReader, header: Header) -> Basis | None:
    """The output's basis: none but for scheme basis, whose basis is the source's where it has one, else fitted
    on the full logits of the batches relabel would fit it on (lpq.method.fidelity.sample_batches)."""
    if header.quant.scheme != "basis":
        return None
    if reader.basis is not None:
        return reader.basis
    logits = np.concatenate([reader.read(b).values for b in sample_batches(header)])
    return fit_basis(logits, header.quant.rank or 0)


def _recalibrated(reader: LpqlReader, cal: Calibration, k: int) -> Calibration:
    """The source's calibration with k marked; its overall mass for k measured on the full logits when the
    kept-mass table has no row for k (a full-label source), else left unknown."""
    measured = None
    if str(k) not in cal.overall.kept_mass and reader.header.quant.scheme == "none":
        row = mean_kept_mass(reader, cal.temperatures)[k - 1]
        measured = {f"{t:g}": float(m) for t, m in zip(cal.temperatures, row)}
    return for_k(cal, k, measured)
