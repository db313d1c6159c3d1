"""Resume checkpoints of a training loop (squeeze's teacher, train's students).

A checkpoint holds the model, optimizer, schedule and loss scaler under fixed keys, plus what the loop adds
(its progress, its random state). It is written atomically and read with ``weights_only=True`` alone: a
checkpoint is a file on the user's disk like any other, never something to unpickle.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lpq.errors import LpqError
from lpq.files import atomic_file


@dataclass
class TrainingState:
    model: nn.Module
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler

    def save(self, path: Path, **extra: Any) -> None:
        with atomic_file(path) as f:
            torch.save(
                {
                    "model": self.model.state_dict(),
                    "optimizer": self.opt.state_dict(),
                    "scheduler": self.sched.state_dict(),
                    "scaler": self.scaler.state_dict(),
                    **extra,
                },
                f,
            )

    def load(self, path: Path, what: str, check: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
        """Restores the checkpoint at ``path`` and returns it (for the loop's own keys). ``check(state)`` runs
        first, before anything is restored: a checkpoint of other settings leaves the objects untouched."""
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            missing = {"model", "optimizer", "scheduler", "scaler"} - set(state)
        except Exception as e:
            raise LpqError("resume-unreadable", f"{path} is not a {what} checkpoint: {e.__class__.__name__}") from None
        if missing:
            lacks = ", ".join(sorted(missing))
            raise LpqError("resume-unreadable", f"{path} is not a {what} checkpoint: it lacks {lacks}")
        if check is not None:
            check(state)
        try:
            self.model.load_state_dict(state["model"])
            self.opt.load_state_dict(state["optimizer"])
            self.sched.load_state_dict(state["scheduler"])
            if state["scaler"]:  # empty when the scaler is disabled (float32, bfloat16)
                self.scaler.load_state_dict(state["scaler"])
        except (RuntimeError, ValueError, KeyError, TypeError) as e:  # a tensor of another shape, a foreign state
            first = str(e).strip().splitlines()[-1].strip()
            raise LpqError("resume-unreadable", f"{path} does not fit this {what}: {first}") from None
        return state
