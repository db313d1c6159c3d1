"""Dense training targets from stored labels (LPQLD stages 5-6; README, "The method").

MR-k: softmax over the k stored logits at the current temperature, scattered into zeros. MS-k: the stored
probabilities at their classes and the remaining mass spread evenly over the other classes. Tail-k: MR-k's
logits, and the mass of the classes outside them restored at the current temperature from the tail's sorted
curve (spread evenly over them: which class holds which rank is not stored). Sampled-k: each drawn class
weighted exp(z / T - z / T_p) (self-normalized importance sampling), an estimate of the full target at T.
Basis-k+r: the file's mean logits plus the stored coefficients times its basis, MR-k's logits in place at their
classes, softmaxed at T over every class. Full labels: softmax over all logits. The temperature is where
Dynamic Knowledge Reuse acts. Hard targets (the baseline without a teacher) are the images' own classes, mixed
with the weight the batch's CutMix or MixUp gave each image.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch

from lpq.format import BatchRecord, Header
from lpq.format.header import tail_ranks
from lpq.format.layout import Basis


def _full(values: torch.Tensor, _indices: torch.Tensor | None, _num_classes: int, t: float, **_: float) -> torch.Tensor:
    return torch.softmax(values.float() / t, dim=1)


def _mr(values: torch.Tensor, indices: torch.Tensor, num_classes: int, t: float, **_: float) -> torch.Tensor:
    probs = torch.softmax(values.float() / t, dim=1)  # (B, k)
    return torch.zeros(values.shape[0], num_classes).scatter_(1, indices, probs)


def _ms(values: torch.Tensor, indices: torch.Tensor, num_classes: int, _t: float, **_: float) -> torch.Tensor:
    probs = values.float().clamp(min=0.0)
    k = values.shape[1]
    rest = (1.0 - probs.sum(dim=1, keepdim=True)).clamp(min=0.0) / max(num_classes - k, 1)
    return rest.expand(-1, num_classes).clone().scatter_(1, indices, probs)


@functools.lru_cache(maxsize=16)
def tail_curve(rest: int, points: int) -> torch.Tensor:
    """(points, rest): the linear interpolation that turns a tail's points into its whole sorted curve."""
    ranks = tail_ranks(rest, points)
    weights = torch.zeros(points, rest, dtype=torch.float64)
    for j in range(points - 1):
        lo, hi = ranks[j], ranks[j + 1]
        w = torch.arange(hi - lo + 1, dtype=torch.float64) / (hi - lo)
        weights[j, lo : hi + 1] = 1.0 - w
        weights[j + 1, lo : hi + 1] = w
    return weights.float()


def _tail(values: torch.Tensor, indices: torch.Tensor, num_classes: int, t: float, **_: float) -> torch.Tensor:
    """The kept classes at exp(z / T) / Z; each other class an equal share of the tail's mass, the sum of
    exp(f(r) / T) over the interpolated sorted tail f; Z makes the row sum to 1 (spec section 4.1)."""
    k = indices.shape[1]
    rest = num_classes - k
    v = values.float() / t
    kept, curve = v[:, :k], v[:, k:] @ tail_curve(rest, v.shape[1] - k)
    top = torch.maximum(kept.max(dim=1).values, curve.max(dim=1).values)[:, None]
    kept, tail = torch.exp(kept - top), torch.exp(curve - top).sum(dim=1, keepdim=True)
    z = kept.sum(dim=1, keepdim=True) + tail
    return (tail / (rest * z)).expand(-1, num_classes).clone().scatter_(1, indices, kept / z)


def _sampled(
    values: torch.Tensor, indices: torch.Tensor, num_classes: int, t: float, sample_temp: float, **_: object
) -> torch.Tensor:
    """Self-normalized importance weights of the k draws: a class drawn from softmax(z / T_p) stands for
    softmax(z / T) with weight exp(z / T - z / T_p), normalized over the draws and summed per class (spec 4.1)."""
    w = torch.softmax(values.float() * (1.0 / t - 1.0 / sample_temp), dim=1)
    return torch.zeros(values.shape[0], num_classes).scatter_add_(1, indices, w)


def _basis(
    values: torch.Tensor, indices: torch.Tensor, num_classes: int, t: float, basis: Basis, **_: object
) -> torch.Tensor:
    """softmax(z / T) over all classes, z the basis' mean plus the row's coefficients times its weights, the k
    stored logits in place at their classes (spec section 4.1)."""
    k = indices.shape[1]
    v = values.float()
    z = torch.from_numpy(basis.mean) + v[:, k:] @ torch.from_numpy(basis.weights)
    return torch.softmax(z.scatter(1, indices, v[:, :k]) / t, dim=1)


# How each scheme's stored rows become targets: a new label code is an entry here (and its encoder in topk).
SCHEMES: dict[str, Callable[..., torch.Tensor]] = {
    "none": _full,
    "mr": _mr,
    "ms": _ms,
    "tail": _tail,
    "sampled": _sampled,
    "basis": _basis,
}


def dense_targets(
    values: torch.Tensor,
    indices: torch.Tensor | None,
    scheme: str,
    num_classes: int,
    temperature: float,
    sample_temp: float | None = None,
    basis: Basis | None = None,
) -> torch.Tensor:
    """(B, C) float32 target distributions at ``temperature`` from stored values and (top-k) class indices;
    ``sample_temp``: the proposal temperature of scheme sampled (its header's sample_temperature); ``basis``: the
    file's basis, for scheme basis (`LpqlReader.basis`)."""
    if scheme != "none" and indices is None:
        raise ValueError("top-k labels need their class indices")
    if scheme == "sampled" and sample_temp is None:
        raise ValueError("sampled labels need the temperature their classes were drawn at")
    if scheme == "basis" and basis is None:
        raise ValueError("basis labels need their file's basis")
    return SCHEMES[scheme](values, indices, num_classes, temperature, sample_temp=sample_temp, basis=basis)


def stored_targets(
    values: torch.Tensor,
    indices: torch.Tensor | None,
    header: Header,
    temperature: float,
    basis: Basis | None = None,
) -> torch.Tensor:
    """`dense_targets` of rows stored in a file with this header (and this basis, for scheme basis): its scheme
    and the scheme's parameters."""
    q = header.quant
    return dense_targets(values, indices, q.scheme, header.num_classes, temperature, q.sample_temperature, basis)


def record_targets(rec: BatchRecord, header: Header, temperature: float, basis: Basis | None = None) -> torch.Tensor:
    """Dense (B, C) targets of one stored batch."""
    indices = None if rec.indices is None else torch.from_numpy(rec.indices)
    return stored_targets(torch.from_numpy(rec.values), indices, header, temperature, basis)


def hard_targets(classes: torch.Tensor, partner: torch.Tensor, mix_lambda: float, num_classes: int) -> torch.Tensor:
    """(B, C) one-hot targets of the images' classes (B,), mixed as the batch was: lam * own + (1 - lam) * partner's."""
    own = torch.nn.functional.one_hot(classes, num_classes).float()
    return mix_lambda * own + (1.0 - mix_lambda) * own[partner]
