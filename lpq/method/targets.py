"""Dense training targets from stored labels (LPQLD stages 5-6; README, "The method").

MR-k: softmax over the k stored logits at the current temperature, scattered into zeros. MS-k: the stored
probabilities at their classes and the remaining mass spread evenly over the other classes. Full labels:
softmax over all logits. The temperature is where Dynamic Knowledge Reuse acts. Hard targets (the
baseline without a teacher) are the images' own classes, mixed with the weight the batch's CutMix or
MixUp gave each image.
"""

from __future__ import annotations

import torch

from lpq.format import BatchRecord, Header


def dense_targets(
    values: torch.Tensor, indices: torch.Tensor | None, scheme: str, num_classes: int, temperature: float
) -> torch.Tensor:
    """(B, C) float32 target distributions from (B, k) stored values and class indices."""
    if scheme == "none":
        return torch.softmax(values.float() / temperature, dim=1)
    if indices is None:
        raise ValueError("top-k labels need their class indices")
    if scheme == "mr":
        probs = torch.softmax(values.float() / temperature, dim=1)  # (B, k)
        return torch.zeros(values.shape[0], num_classes).scatter_(1, indices, probs)
    probs = values.float().clamp(min=0.0)
    k = values.shape[1]
    rest = (1.0 - probs.sum(dim=1, keepdim=True)).clamp(min=0.0) / max(num_classes - k, 1)
    return rest.expand(-1, num_classes).clone().scatter_(1, indices, probs)


def record_targets(rec: BatchRecord, header: Header, temperature: float) -> torch.Tensor:
    """Dense (B, C) targets of one stored batch."""
    indices = None if rec.indices is None else torch.from_numpy(rec.indices)
    return dense_targets(torch.from_numpy(rec.values), indices, header.quant.scheme, header.num_classes, temperature)


def hard_targets(classes: torch.Tensor, partner: torch.Tensor, mix_lambda: float, num_classes: int) -> torch.Tensor:
    """(B, C) one-hot targets of the images' classes (B,), mixed as the batch was: lam * own + (1 - lam) * partner's."""
    own = torch.nn.functional.one_hot(classes, num_classes).float()
    return mix_lambda * own + (1.0 - mix_lambda) * own[partner]
