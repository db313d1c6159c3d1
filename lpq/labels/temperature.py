"""Temperatures: the teacher schedule of Dynamic Knowledge Reuse and the calibration statistics behind it.

DKR (METHOD.md section 2, stage 6) softens the same stored logits differently from epoch to epoch: a step
schedule starts at T=20 and multiplies by 0.7 every 30 of 300 epochs down to a floor of 2; a cosine one
decays from the start to the floor. Reverse forms run the same curve backwards. ``every`` is given for
the authors' 300-epoch budget and scaled to the run's epoch count.

Calibration statistics, written into the label file at relabel time, describe the teacher's logits per
class and overall (top-1 logit, top1-top2 margin, entropy at T=1, softmax mass inside the stored top-k at
each temperature of the schedule), so training and `lpq inspect` can judge what a temperature does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from lpq.format import Calibration, LogitStats, StudentTemp, TempSchedule

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


@dataclass
class CalibrationStats:
    """Running per-class sums of logit statistics; mergeable across resumes and ranks."""

    num_classes: int
    temperatures: list[float]
    k: int
    sums: np.ndarray = field(init=False)  # (C, 3 + len(temps)): top1, margin, entropy, mass at each T
    counts: np.ndarray = field(init=False)  # (C,)

    def __post_init__(self) -> None:
        self.sums = np.zeros((self.num_classes, 3 + len(self.temperatures)))
        self.counts = np.zeros(self.num_classes)

    def add(self, logits: np.ndarray, classes: np.ndarray) -> None:
        """logits (B, C) float, classes (B,) the class of each sample's own image."""
        z = logits.astype(np.float64)
        top2 = -np.sort(-np.partition(z, z.shape[1] - 2, axis=1)[:, -2:], axis=1)  # (B, 2) descending
        cols = [top2[:, 0], top2[:, 0] - top2[:, 1], _entropy(z)]
        kth = -np.sort(-z, axis=1)[:, : self.k]
        for t in self.temperatures:
            zt = z / t
            m = zt.max(axis=1, keepdims=True)
            total = np.exp(zt - m).sum(axis=1)
            cols.append(np.exp(kth / t - m).sum(axis=1) / total)
        np.add.at(self.sums, classes, np.stack(cols, axis=1))
        np.add.at(self.counts, classes, 1)

    def merge(self, other: CalibrationStats) -> None:
        self.sums += other.sums
        self.counts += other.counts

    def to_dict(self) -> dict[str, list]:
        return {"sums": self.sums.tolist(), "counts": self.counts.tolist()}

    def load_dict(self, d: dict[str, list]) -> None:
        self.sums = np.asarray(d["sums"], np.float64)
        self.counts = np.asarray(d["counts"], np.float64)

    def _stats(self, sums: np.ndarray, count: float) -> LogitStats:
        mean = sums / max(count, 1.0)
        return LogitStats(
            samples=int(count),
            top1_logit=float(mean[0]),
            margin=float(mean[1]),
            entropy=float(mean[2]),
            topk_mass={f"{t:g}": float(m) for t, m in zip(self.temperatures, mean[3:])},
        )

    def calibration(self, schedule: TempSchedule | None = None) -> Calibration:
        return Calibration(
            temperatures=self.temperatures,
            topk=self.k,
            overall=self._stats(self.sums.sum(axis=0), float(self.counts.sum())),
            per_class=[self._stats(self.sums[c], float(self.counts[c])) for c in range(self.num_classes)],
            teacher_schedule=schedule or TempSchedule(),
            student=StudentTemp(),
        )


def _entropy(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=1, keepdims=True)
    return -(p * np.log(np.clip(p, 1e-300, None))).sum(axis=1)
