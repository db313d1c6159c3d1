"""lpq: compact soft labels for large-scale dataset distillation (LPQLD), around the `.lpql` container.

The names below are the library a training loop of your own imports; the `lpq` command is a thin layer
over the same code. They load on first use, so ``import lpq`` (and ``lpq --help``) stays fast.

    import lpq
    data = lpq.DistilledDataset("syn/", "labels.lpql")          # (inputs, soft targets) per stored batch
    loss = lpq.kd_loss(model(inputs), targets, student_temp=1.0)

- Making labels and students: ``relabel`` (a teacher file, pretrained weights or any ``nn.Module`` with its
  ``InputSpec``) and ``train``, the commands as functions (`lpq.api`).
- Label files: ``LpqlReader`` (open and read one), ``LpqlWriter`` (write one), ``prune_file`` / ``PruneConfig``,
  ``quantize_file`` / ``QuantizeConfig``, ``coverage`` (views per image).
- The method: ``DistilledDataset`` (and ``BatchDraw``, the sampler choosing an epoch's stored batches),
  ``dense_targets``, ``TempSchedule`` and ``teacher_temperature`` (Dynamic Knowledge Reuse), ``kd_loss``,
  ``StudentTemperature`` and ``fit_student_temperature`` (Calibrated Alignment), ``quantize_logits`` (the label
  codes: MR, MS, tail, sampled, basis) and ``fit_basis`` (a basis code's basis; ``LpqlReader.basis`` reads a
  file's, which ``dense_targets`` takes), ``choose_batches`` (label pruning), ``BNMatcher`` (synthesis by BN
  statistics).
- Images: ``open_images`` (a distilled folder, or a ``--data`` name), ``InputSpec`` (how images become a model's
  input).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.2.0"  # CHANGELOG.md says what each version changed

_HOMES = {
    "LpqlReader": "lpq.format",
    "LpqlWriter": "lpq.format",
    "relabel": "lpq.api",
    "train": "lpq.api",
    "InputSpec": "lpq.format",
    "BatchDraw": "lpq.method.batches",
    "TempSchedule": "lpq.format",
    "coverage": "lpq.format.coverage",
    "open_images": "lpq.data",
    "DistilledDataset": "lpq.method.batches",
    "dense_targets": "lpq.method.targets",
    "teacher_temperature": "lpq.method.temperature",
    "kd_loss": "lpq.method.loss",
    "fit_student_temperature": "lpq.method.loss",
    "StudentTemperature": "lpq.method.loss",
    "quantize_logits": "lpq.method.topk",
    "fit_basis": "lpq.method.topk",
    "choose_batches": "lpq.method.pruning",
    "BNMatcher": "lpq.method.bn",
    "prune_file": "lpq.stages.prune",
    "PruneConfig": "lpq.configs.prune",
    "quantize_file": "lpq.stages.quantize",
    "QuantizeConfig": "lpq.configs.quantize",
}
__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'lpq' has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOMES[name]), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return [*__all__, "__version__"]
