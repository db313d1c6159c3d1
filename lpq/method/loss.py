"""The distillation loss and Calibrated Alignment's temperature fit (LPQLD stage 6).

Loss: KL(target || softmax(student / T_s)), batch mean. CA refits T_s each epoch as the grid value that
minimizes that KL on some of the epoch's batches.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lpq.format import StudentTemp


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
