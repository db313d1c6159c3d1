"""Temperatures: the teacher schedule of Dynamic Knowledge Reuse and the calibration statistics behind it.

DKR (LPQLD stage 6; README, "The method") softens the same stored logits differently from epoch to epoch: a step
schedule starts at T=20 and multiplies by 0.7 every 30 of 300 epochs down to a floor of 2; a cosine one
decays from the start to the floor. Reverse forms run the same curve backwards. ``every`` is given for
the authors' 300-epoch budget and scaled to the run's epoch count.

Calibration statistics, written into the label file at relabel time from the full logits, describe the
teacher's logits per class and overall (top-1 logit, top1-top2 margin, entropy at T=1, and the softmax mass
kept by the top k for a ladder of k at each temperature of the schedule), so `lpq inspect` shows what MR-k
keeps at the temperatures training will use, and `lpq quantize --top-k auto` can choose k.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from lpq.format import Calibration, Header, LogitStats, StudentTemp, TempSchedule

METHOD_EPOCHS = 300  # the budget the authors' schedule constants are given for


def teacher_temperature(s: TempSchedule, epoch: int, epochs: int) -> float:
    """The teacher temperature of a (0-based) student epoch out of ``epochs``."""
    if s.kind == "none":
        return s.start
    reverse = s.kind.startswith("reverse")
    e = epochs - 1 - epoch if reverse else epoch
    if s.kind.endswith("step"):
        every = max(1, round(s.every * epochs / METHOD_EPOCHS))
        return max(s.floor, s.start * s.factor ** (e // every))
    progress = e / max(1, epochs - 1)
    return s.floor + 0.5 * (s.start - s.floor) * (1 + math.cos(math.pi * progress))


def schedule_temperatures(s: TempSchedule, epochs: int = METHOD_EPOCHS) -> list[float]:
    """The distinct temperatures a schedule visits, rounded to 4 digits, plus T=1."""
    temps = {round(teacher_temperature(s, e, epochs), 4) for e in range(epochs)}
    return sorted(temps | {1.0}, reverse=True)


def middle_temperature(s: TempSchedule) -> float:
    """The temperature of a schedule's middle epoch (3.361 for the authors' step schedule): half of a DKR run
    is at it or hotter, where a top-k keeps far less of the target than at T = 1. Rounded as the calibration's
    temperatures are, so that it names one of them."""
    return round(teacher_temperature(s, METHOD_EPOCHS // 2, METHOD_EPOCHS), 4)


LADDER = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000)  # k of the kept-mass table


def ladder_for(num_classes: int, k: int) -> list[int]:
    """The k's whose kept mass a calibration records: the standard ladder below C, the file's own k, and C."""
    return sorted({*(v for v in LADDER if v < num_classes), k, num_classes})


def kept_mass(logits: np.ndarray, temperatures: list[float], ks: list[int]) -> np.ndarray:
    """(B, len(ks), len(temperatures)): the softmax mass at each temperature inside each sample's top k."""
    z = -np.sort(-logits.astype(np.float64), axis=1)  # (B, C) descending
    out = np.empty((len(z), len(ks), len(temperatures)))
    at = np.asarray(ks) - 1
    for j, t in enumerate(temperatures):
        p = np.exp((z - z[:, :1]) / t)
        out[:, :, j] = np.cumsum(p, axis=1)[:, at] / p.sum(axis=1, keepdims=True)
    return out


FIXED_BITS = 24  # calibration sums are integers in units of 2^-24: integer sums are exact, so parts summed in any
# order (torchrun ranks, resumed runs) give the same bits; float sums would differ in their last bits by order


@dataclass
class CalibrationStats:
    """Running per-class sums of logit statistics; mergeable across resumes and ranks, order-independent."""

    num_classes: int
    schedule: TempSchedule  # the schedule whose temperatures the masses are measured at, recorded with them
    k: int  # the file's own k
    temperatures: list[float] = field(init=False)
    ladder: list[int] = field(init=False)
    sums: np.ndarray = field(init=False)  # (C, 3 + ladder x temps) int64 fixed point: top1, margin, entropy, masses
    counts: np.ndarray = field(init=False)  # (C,) int64

    def __post_init__(self) -> None:
        self.temperatures = schedule_temperatures(self.schedule)
        self.ladder = ladder_for(self.num_classes, self.k)
        self.sums = np.zeros((self.num_classes, 3 + len(self.ladder) * len(self.temperatures)), np.int64)
        self.counts = np.zeros(self.num_classes, np.int64)

    @classmethod
    def for_header(cls, header: Header, schedule: TempSchedule | None = None) -> CalibrationStats:
        return cls(header.num_classes, schedule or TempSchedule(), header.quant.k)

    def add(self, logits: np.ndarray, classes: np.ndarray) -> None:
        """logits (B, C) float, classes (B,) the class of each sample's own image."""
        z = logits.astype(np.float64)
        top2 = -np.sort(-np.partition(z, z.shape[1] - 2, axis=1)[:, -2:], axis=1)  # (B, 2) descending
        cols = np.stack([top2[:, 0], top2[:, 0] - top2[:, 1], _entropy(z)], axis=1)
        masses = kept_mass(z, self.temperatures, self.ladder).reshape(len(z), -1)
        fixed = np.rint(np.ldexp(np.concatenate([cols, masses], axis=1), FIXED_BITS)).astype(np.int64)
        np.add.at(self.sums, classes, fixed)
        np.add.at(self.counts, classes, 1)

    def merge(self, other: CalibrationStats) -> None:
        self.sums += other.sums
        self.counts += other.counts

    def to_dict(self) -> dict[str, object]:
        return {"fixed_bits": FIXED_BITS, "sums": self.sums.tolist(), "counts": self.counts.tolist()}

    @staticmethod
    def readable(d: dict[str, object]) -> bool:
        """Whether saved sums are of this layout (older float sums are recomputed, never misread)."""
        return d.get("fixed_bits") == FIXED_BITS and {"sums", "counts"} <= d.keys()

    def load_dict(self, d: dict[str, list]) -> None:
        self.sums = np.asarray(d["sums"], np.int64)
        self.counts = np.asarray(d["counts"], np.int64)

    def _stats(self, sums: np.ndarray, count: float) -> LogitStats:
        mean = np.ldexp(sums.astype(np.float64), -FIXED_BITS) / max(count, 1.0)
        masses = mean[3:].reshape(len(self.ladder), len(self.temperatures))
        table = {str(k): [round(float(m), 6) for m in row] for k, row in zip(self.ladder, masses)}
        return LogitStats(
            samples=int(count),
            top1_logit=float(mean[0]),
            margin=float(mean[1]),
            entropy=float(mean[2]),
            topk_mass=dict(zip((f"{t:g}" for t in self.temperatures), table[str(self.k)])),
            kept_mass=table,
        )

    def calibration(self) -> Calibration:
        return Calibration(
            temperatures=self.temperatures,
            topk=self.k,
            overall=self._stats(self.sums.sum(axis=0), float(self.counts.sum())),
            per_class=[self._stats(self.sums[c], float(self.counts[c])) for c in range(self.num_classes)],
            teacher_schedule=self.schedule,
            student=StudentTemp(),
        )


def for_k(calibration: Calibration, k: int, overall_mass: dict[str, float] | None = None) -> Calibration:
    """The calibration of a file re-quantized to top-k: its masses stay those of the full logits (the kept-mass
    table), the file's own k is marked; where the table has no row for k (and ``overall_mass`` does not give
    it, measured on the full logits), the masses are unknown (empty), never 1.0."""

    def mark(stats: LogitStats, given: dict[str, float] | None) -> LogitStats:
        row = stats.kept_mass.get(str(k))
        mass = (
            given
            if given is not None
            else (dict(zip((f"{t:g}" for t in calibration.temperatures), row)) if row is not None else {})
        )
        return stats.model_copy(update={"topk_mass": mass})

    return calibration.model_copy(
        update={
            "topk": k,
            "overall": mark(calibration.overall, overall_mass),
            "per_class": [mark(c, None) for c in calibration.per_class],
        }
    )


def _entropy(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=1, keepdims=True)
    return -(p * np.log(np.clip(p, 1e-300, None))).sum(axis=1)
