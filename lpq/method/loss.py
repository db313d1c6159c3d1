"""The distillation loss and Calibrated Alignment's temperature fit (LPQLD stage 6).

Loss: KL(target || softmax(student / T_s)), batch mean. CA refits T_s each epoch as the grid value that
minimizes that KL on some of the epoch's batches.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def kd_loss(logits: torch.Tensor, target: torch.Tensor, student_temp: float) -> torch.Tensor:
    """KL(target || softmax(logits / T_s)), batch mean."""
    return F.kl_div(F.log_softmax(logits / student_temp, dim=1), target, reduction="batchmean")


@torch.no_grad()
def fit_student_temperature(logits: torch.Tensor, target: torch.Tensor, grid: torch.Tensor) -> float:
    """The grid temperature minimizing KL(target || softmax(logits / t))."""
    losses = torch.stack([kd_loss(logits, target, float(t)) for t in grid])
    return float(grid[int(losses.argmin())])
