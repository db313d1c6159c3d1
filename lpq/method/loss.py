"""The distillation loss and Calibrated Alignment (LPQLD stage 6).

Loss: KL(target || softmax(student / T_s)), batch mean. The student temperature T_s of a run is one
`StudentTemperature`: fixed, following the teacher's T each epoch, or refitted after every epoch by CA as the
grid value that minimizes that KL on some of the epoch's batches. A training loop asks it for the loss, so a
refitted T_s is the one the next epoch trains with.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from lpq.choices import CaFit
from lpq.format import StudentTemp

CALIBRATION_BATCHES = 8  # stored batches CA fits T_s on after each epoch (first-batches)


def kd_loss(
    logits: torch.Tensor, target: torch.Tensor, student_temp: float = 1.0, teacher_temp: float | None = None
) -> torch.Tensor:
    """KL(target || softmax(logits / T_s)), batch mean; times T^2 when ``teacher_temp`` T is given (the authors'
    Tiny-ImageNet recipe, which keeps the gradient's scale as T changes)."""
    loss = F.kl_div(F.log_softmax(logits / student_temp, dim=1), target, reduction="batchmean")
    return loss if teacher_temp is None else loss * teacher_temp * teacher_temp


def ca_grid(student: StudentTemp | None = None) -> torch.Tensor:
    """Calibrated Alignment's student-temperature grid: a label file's, or the authors' (0.01 to 1.0, 100 points)."""
    s = student or StudentTemp()
    return torch.linspace(s.grid_min, s.grid_max, s.grid_points)


@torch.no_grad()
def fit_student_temperature(logits: torch.Tensor, target: torch.Tensor, grid: torch.Tensor | None = None) -> float:
    """The temperature of ``grid`` (default: `ca_grid`, the authors') minimizing KL(target || softmax(logits / t))."""
    grid = ca_grid() if grid is None else grid
    losses = torch.stack([kd_loss(logits, target, float(t)) for t in grid])
    return float(grid[int(losses.argmin())])


@dataclass
class StudentTemperature:
    """T_s through a run. ``follow``: the epoch's teacher T (the authors' default without CA). ``fit``: CA refits
    T_s after every epoch on what the epoch kept: its first ``keep`` batches re-run in eval mode
    (``first-batches``), or its last step's training-mode logits from before the optimizer step, as the authors'
    code fits it (``last-batch``). Otherwise ``value`` stays fixed.

        temps = StudentTemperature(1.0, fit="first-batches")
        for epoch in range(epochs):
            temps.start_epoch(teacher_temp)
            for x, target in batches:
                logits = model(x)
                loss = temps.loss(logits, target)
                temps.observe(x, logits, target)
                ...
            temps.refit(model)
    """

    value: float
    follow: bool = False
    fit: CaFit | None = None
    grid: torch.Tensor = field(default_factory=ca_grid)
    keep: int = CALIBRATION_BATCHES
    _inputs: list[torch.Tensor] = field(default_factory=list, repr=False)
    _targets: list[torch.Tensor] = field(default_factory=list, repr=False)
    _last: torch.Tensor | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.follow and self.fit:
            raise ValueError("a student temperature that follows the teacher's is not fitted too")

    def start_epoch(self, teacher_temp: float) -> float:
        """T_s of the epoch at teacher temperature ``teacher_temp``; forgets what the last epoch kept."""
        if self.follow:
            self.value = teacher_temp
        self._inputs, self._targets, self._last = [], [], None
        return self.value

    def loss(self, logits: torch.Tensor, target: torch.Tensor, teacher_temp: float | None = None) -> torch.Tensor:
        """`kd_loss` at the current T_s (times T^2 with ``teacher_temp``)."""
        return kd_loss(logits.float(), target, self.value, teacher_temp)

    def observe(self, inputs: torch.Tensor, logits: torch.Tensor, target: torch.Tensor) -> None:
        """Keep what CA will fit on from one training step."""
        if self.fit == "last-batch":
            self._last, self._targets = logits.detach().float(), [target]
        elif self.fit == "first-batches" and len(self._inputs) < self.keep:
            self._inputs.append(inputs)
            self._targets.append(target)

    def refit(
        self,
        model: nn.Module,
        forward: Callable[[torch.Tensor], torch.Tensor] | None = None,
        share: Callable[[float], float] = float,
    ) -> float:
        """CA after an epoch: T_s becomes the grid value minimizing the KL on what the epoch kept; returns it.
        ``forward`` runs the model on kept inputs (default: ``model`` itself; a loop with autocast passes its
        own); ``share`` makes every process of a distributed run take rank 0's value."""
        if self.fit is None:
            return self.value
        logits = self._last
        if logits is None:
            training = model.training
            model.eval()
            with torch.no_grad():
                logits = torch.cat([(forward or model)(x).float() for x in self._inputs])
            model.train(training)  # a loop that sets the mode once per run keeps training in its mode
        fitted = fit_student_temperature(logits.cpu(), torch.cat(self._targets).cpu(), self.grid)
        self.value = share(fitted)
        return self.value
