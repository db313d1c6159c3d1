"""How right a label code stays at every temperature, at a byte budget, measured on the labels' own logits.

A budget xN is N times fewer bytes than full 8-bit labels of every view, pruning and bytes per stored view
counted together: at pruning xP each stored view may take P/N of a full 8-bit view. A code fits with the largest
k whose raw bytes per view (values with their row scale, then class indices: spec 5.1-5.2; zstd left out) do;
tail tries 2, 4 and 8 points of the sorted rest, sampled the proposal temperatures 1, 2 and 4. Its distance from
the full target, decoded through the real codecs (so 8-bit rounding counts), at each temperature: KL(full ||
code) (infinite where the code gives no mass to a class the teacher gives some, as MR-k does outside its top
k), total variation (the share of probability mass in the wrong place, 0 to 1), and top-1 agreement. Distances
are per view: sampled labels' error is variance, which averages out over the views a student sees.

A budget also chooses the pruning (`choose_plan`): the authors' x10 (METHOD.md, 5: x40, x80 and x200 all prune
x10), more only while no code keeps the targets within GOOD_TV of the full ones. A per-view distance cannot see
what fewer views cost a student, so it never argues for less pruning than the authors found safe, only for more
where x10 leaves too few bytes per view. The file's own overhead (frames, augmentation, header, calibration) comes
out of the budget first, so the file written holds it.

A budget may be given one code (``codes``): the user has chosen what students get (with a teacher far stronger
than its student MR-k trained better students than the full labels themselves: benchmarks/RESULTS.md, the
frontier), so closeness to the full targets no longer argues for pruning: the budget keeps the first pruning at
which that code fits, with its largest k.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from pydantic import BaseModel, Field

from lpq.errors import LpqError
from lpq.format import Basis, Header, LpqlReader, Quant, TempSchedule
from lpq.format.codecs import index_codec, value_codec
from lpq.format.header import ValueKind
from lpq.format.summary import Overhead
from lpq.method.targets import dense_targets
from lpq.method.temperature import schedule_temperatures
from lpq.method.topk import encode, fit_basis

CODES = ("mr", "ms", "tail", "sampled", "basis")
BUDGET_VIEWS = 2048  # views a budget's codes are measured on: seconds, and a mean TV steady to about 0.01
TAIL_POINTS = (2, 4, 8)
SAMPLE_TEMPS = (1.0, 2.0, 4.0)
RANKS = (0, 2, 4, 8, 16)
AUTHORS_PRUNING = 10.0
PRUNINGS = (1, 2, 4, 5, 10, 20, 25, 40, 50, 100, 200, 250, 500, 1000)  # tried beyond the authors', in this order
GOOD_TV = 0.25  # mean total variation a pruning's best code must reach before more pruning stops being tried
FIXED_MARGIN = 1.25  # an output's calibration gains its k's kept-mass row: about 10% more fixed bytes at 200 classes


def budget_codes(scheme: str | None) -> tuple[str, ...]:
    """The codes a budget may choose: the one a user named (--scheme), else every code (no scheme, or none)."""
    return CODES if scheme in (None, "none") else (scheme,)


def view_bytes(quant: Quant, num_classes: int) -> int:
    """Raw bytes one stored view takes under ``quant`` (values with their row scale, then class indices)."""
    size = value_codec(quant.values).size(1, quant.columns)
    return size + (index_codec(quant.indices, num_classes).size(1, quant.k) if quant.indices else 0)


@dataclass(frozen=True)
class Room:
    """What a budget leaves each stored view: ``budget`` (xN of full 8-bit labels) met with pruning ``prune``, in
    ``values``, less ``reserve`` bytes a view (its share of the file's own overhead); ``stored``: the views the
    file keeps, which share a basis's bytes (unknown: no basis code is tried)."""

    budget: float
    prune: float
    values: ValueKind = "i8"
    reserve: float = 0.0
    stored: float | None = None

    def allowed(self, c: int) -> float:
        """Bytes a stored view's labels may take: a full 8-bit view times prune / budget, less the reserve."""
        return view_bytes(Quant.of("none", c, "i8", c), c) * self.prune / self.budget - self.reserve


def fits(code: str, c: int, room: Room) -> list[Quant]:
    """The quantizations of ``code`` worth trying in ``room``: the largest k that fits (tail: for each number of
    tail points; sampled: at each proposal temperature; basis: at each rank, its basis shared by the stored
    views)."""
    allowed, values = room.allowed(c), room.values
    if code == "basis":
        out = []
        for rank in RANKS if room.stored else ():
            left = allowed - Basis.size(c, rank) / room.stored  # type: ignore[operator]
            ks = [k for k in range(1, c) if view_bytes(Quant.of("basis", k, values, c, rank=rank), c) <= left]
            if ks:
                out.append(Quant.of("basis", max(ks), values, c, rank=rank))
        return out
    out = []
    for tail in TAIL_POINTS if code == "tail" else (4,):
        ks = [
            k
            for k in range(1, c)
            if (code != "tail" or c - k >= tail) and view_bytes(Quant.of(code, k, values, c, tail=tail), c) <= allowed  # type: ignore[arg-type]
        ]
        for tp in SAMPLE_TEMPS if code == "sampled" else (4.0,):
            if ks:
                out.append(Quant.of(code, max(ks), values, c, tail=tail, sample_temperature=tp))  # type: ignore[arg-type]
    return out


def sample_batches(header: Header) -> list[int]:
    """A seeded sample of the kept batches, about BUDGET_VIEWS views: where relabel measures a budget, and where
    relabel and quantize fit a basis (so both fit it on the same views)."""
    kept = header.prune.kept
    n = min(len(kept), math.ceil(BUDGET_VIEWS / header.relabel.batch_size))
    return sorted(np.random.default_rng([header.relabel.seed, 1]).choice(kept, size=n, replace=False).tolist())


def sample_views(reader: LpqlReader, count: int, seed: int = 0) -> np.ndarray:
    """(≤ count, C) full logits of stored views, from batches drawn at random (seeded)."""
    rows, total = [], 0
    for bid in np.random.default_rng(seed).permutation(reader.batch_ids):
        rows.append(reader.read(int(bid)).values)
        total += len(rows[-1])
        if total >= count:
            break
    return np.concatenate(rows)[:count].astype(np.float32)


def roundtrip(logits: np.ndarray, quant: Quant, basis: Basis | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Stored values and indices as a reader decodes them: quantized, then through the value codec."""
    values, indices = encode(logits, quant, seed=[0, 0], basis=basis)
    codec = value_codec(quant.values)
    decoded = codec.decode(codec.encode(values), len(values), quant.columns)
    return torch.from_numpy(decoded), None if indices is None else torch.from_numpy(indices)


def measure(
    logits: np.ndarray, quant: Quant, temps: list[float], basis: Basis | None = None
) -> dict[str, list[float | None]]:
    """KL(full || code) (None where infinite), total variation and top-1 agreement at each temperature; scheme
    basis on ``basis``, else on one fitted to ``logits`` themselves."""
    if quant.scheme == "basis" and basis is None:
        basis = fit_basis(logits, quant.rank or 0)
    values, indices = roundtrip(logits, quant, basis)
    full = torch.from_numpy(logits).double()
    kl: list[float | None] = []
    tv, agree = [], []
    for t in temps:
        p = torch.softmax(full / t, dim=1)
        q = dense_targets(values, indices, quant.scheme, logits.shape[1], t, quant.sample_temperature, basis).double()
        lost = ((q == 0) & (p > 0)).any()
        kl.append(None if lost else float((p * (p.log() - q.log())).sum(dim=1).mean()))
        tv.append(float(0.5 * (p - q).abs().sum(dim=1).mean()))
        agree.append(float((q.argmax(dim=1) == p.argmax(dim=1)).double().mean()))
    return {"kl": kl, "tv": tv, "top1_agreement": agree}


@dataclass(frozen=True)
class Candidate:
    """A code that fits a budget, and how far it is from the full target at each temperature."""

    quant: Quant
    view_bytes: int
    distances: dict[str, list[float | None]]

    @property
    def mean_tv(self) -> float:
        return float(np.mean([v for v in self.distances["tv"] if v is not None]))


def candidates(
    logits: np.ndarray, room: Room, temps: list[float], widest: Basis | None = None, codes: tuple[str, ...] = CODES
) -> list[Candidate]:
    """Each of ``codes``' best fit at the budget (least mean total variation over ``temps``), best first; empty
    where none fits. Basis codes are measured on ``widest`` (fitted to ``logits`` at the largest rank where not
    given), cut to their rank: principal directions nest."""
    c = logits.shape[1]
    if widest is None and room.stored and "basis" in codes:
        widest = widest_basis(logits)
    best = []
    for code in codes:
        tried = [
            Candidate(q, view_bytes(q, c), measure(logits, q, temps, None if widest is None else widest.first(q.rank)))
            if q.rank is not None
            else Candidate(q, view_bytes(q, c), measure(logits, q, temps))
            for q in fits(code, c, room)
        ]
        if tried:
            best.append(min(tried, key=lambda t: t.mean_tv))
    return sorted(best, key=lambda t: t.mean_tv)


class CodeFit(BaseModel):
    """A code at a budget and its distance from the full targets, at the labels' DKR schedule's start and floor
    temperatures and on average over the temperatures it visits."""

    code: str
    k: int
    view_bytes: int
    tv_mean: float = Field(description="total variation from the full target, mean over the temperatures")
    tv_at_start: float
    tv_at_floor: float
    kl_at_start: float | None = Field(description="KL(full || code), nats; None: infinite (classes given no mass)")
    kl_at_floor: float | None


class PruningFit(BaseModel):
    """A pruning a budget tried, and its best code (None: no code fits)."""

    pruning: float
    code: str | None
    tv_mean: float | None


class BudgetChoice(BaseModel):
    """What a budget chose and why: every code's best fit, measured on a sample of the labels' own views, at the
    pruning chosen among those tried."""

    budget: float
    pruning: float
    reserved_view_bytes: float = Field(description="a stored view's share of the file's own overhead")
    allowed_view_bytes: float = Field(
        description="bytes a stored view's labels may take: full 8-bit view x pruning / budget, less the reserve"
    )
    temperatures: list[float]
    views: int
    chosen: CodeFit
    tried: list[CodeFit]
    prunings: list[PruningFit] = []
    named: bool = Field(False, description="the code was given (--scheme): the pruning where it first fits, largest k")


def _fit(c: Candidate) -> CodeFit:
    d, q = c.distances, c.quant
    return CodeFit(
        code=q.name + (f" T_p={q.sample_temperature:g}" if q.sample_temperature else ""),
        k=q.k,
        view_bytes=c.view_bytes,
        tv_mean=c.mean_tv,
        tv_at_start=d["tv"][0] or 0.0,
        tv_at_floor=d["tv"][-1] or 0.0,
        kl_at_start=d["kl"][0],
        kl_at_floor=d["kl"][-1],
    )


def visited(schedule: TempSchedule, epochs: int) -> list[float]:
    """The temperatures a DKR schedule visits over ``epochs``, hottest first (T=1 only where it is the floor)."""
    return [t for t in schedule_temperatures(schedule, epochs) if t >= schedule.floor]


def widest_basis(logits: np.ndarray) -> Basis:
    """The basis every basis code a budget tries is cut from: ``logits`` fitted at the largest of RANKS."""
    return fit_basis(logits, max(RANKS))


def choose_code(
    logits: np.ndarray, room: Room, temps: list[float], widest: Basis | None = None, codes: tuple[str, ...] = CODES
) -> tuple[BudgetChoice, Quant]:
    """The code and k of ``codes`` whose targets stay closest to the full ones (least mean total variation over
    ``temps``) in ``room``, full values included where they fit and every code may be chosen (basis codes cut
    from ``widest``, as `candidates`); a one-line error naming the pruning the budget needs when nothing fits."""
    c = logits.shape[1]
    budget, prune, values = room.budget, room.prune, room.values
    full_i8 = view_bytes(Quant.of("none", c, "i8", c), c)
    allowed = room.allowed(c)
    found = candidates(logits, room, temps, widest, codes)
    full = Quant.of("none", c, values, c)
    if codes == CODES and view_bytes(full, c) <= allowed:  # every class fits: only the values' rounding is lost
        found.append(Candidate(full, view_bytes(full, c), measure(logits, full, temps)))
    if not found:
        smallest = view_bytes(Quant.of("mr", 1, values, c), c)
        need = math.ceil(budget * (smallest + room.reserve) / full_i8)
        raise LpqError(
            "budget-too-small",
            f"x{budget:g} leaves {allowed:.1f} bytes per stored view at pruning x{prune:g}; the smallest code takes "
            f"{smallest}",
            f"prune to at least x{need} (lpq prune or relabel --ratio {need}), or allow a larger budget",
        )
    found.sort(key=lambda f: f.mean_tv)
    fits_ = [_fit(f) for f in found]
    choice = BudgetChoice(
        budget=budget, pruning=prune, reserved_view_bytes=room.reserve, allowed_view_bytes=allowed, temperatures=temps,
        views=len(logits), chosen=fits_[0], tried=fits_,
    )  # fmt: skip
    return choice, found[0].quant


def prunings(budget: float, floor: float, most: float) -> list[float]:
    """The prunings a budget tries, in order: the authors' x10 (the budget itself where it is smaller: full labels
    fit) or ``floor`` (what the labels are pruned to already) where larger, then PRUNINGS beyond it up to the
    budget and to ``most`` (the pruning that leaves one batch)."""
    start = max(floor, min(AUTHORS_PRUNING, budget))
    return [start, *(float(p) for p in PRUNINGS if start < p <= min(budget, most))]


def choose_plan(
    logits: np.ndarray,
    budget: float,
    floor: float,
    temps: list[float],
    overhead: Overhead,
    views: int,
    batches: int,
    values: ValueKind = "i8",
    codes: tuple[str, ...] = CODES,
) -> tuple[BudgetChoice, Quant]:
    """Pruning, code and k for ``budget`` (module docstring): `choose_code` at each of `prunings` in turn, stopping
    at the first whose best code's mean total variation is within GOOD_TV, else the closest found; given one of
    ``codes``, at the first where it fits. ``views`` and ``batches`` are what the labels hold at pruning ``floor``;
    ``overhead`` what their file spends besides labels (lpq.format.summary.overhead)."""
    found: list[tuple[BudgetChoice, Quant]] = []
    tried = []
    named = codes != CODES
    widest = widest_basis(logits) if "basis" in codes else None  # one fit for every pruning tried
    for p in prunings(budget, floor, floor * batches):
        stored = views * floor / p
        reserve = overhead.per_view + FIXED_MARGIN * overhead.fixed / stored
        try:
            choice, quant = choose_code(logits, Room(budget, p, values, reserve, stored), temps, widest, codes)
        except LpqError as e:
            if e.ref != "budget-too-small":
                raise
            tried.append(PruningFit(pruning=p, code=None, tv_mean=None))
            continue
        tried.append(PruningFit(pruning=p, code=choice.chosen.code, tv_mean=choice.chosen.tv_mean))
        found.append((choice, quant))
        if named or choice.chosen.tv_mean <= GOOD_TV:
            break
    if not found:
        raise LpqError(
            "budget-too-small",
            f"x{budget:g} leaves no code room for a view's labels at any pruning up to x{tried[-1].pruning:g}",
            "allow a larger budget",
        )
    good = named or found[-1][0].chosen.tv_mean <= GOOD_TV
    choice, quant = found[-1] if good else min(found, key=lambda f: f[0].chosen.tv_mean)
    return choice.model_copy(update={"prunings": tried, "named": named}), quant
