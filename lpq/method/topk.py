"""Top-k label quantization of logits (LPQLD stage 5): MR-k keeps the k largest logits, MS-k the k largest
probabilities at its own temperature; both with their class indices. Tail-k (lpq's, spec 1.5) keeps MR-k's
logits and samples the sorted rest at a few ranks, so that the mass outside the top k can be restored at
any temperature (lpq.method.targets). Sampled-k (spec 1.5, after RS-KD, Anshumann et al., ACL 2025) draws k
classes from the teacher's softmax at a proposal temperature and keeps their logits: weighted at decode time,
an estimate of the full target at any temperature whose error averages out over the views, where a top-k is
biased the same way in every view. Basis-k+r (lpq's, spec 1.6, after SCORE's low-rank soft labels) keeps MR-k's
logits and r coefficients on a basis of the file's logits (their mean and first principal directions): the
classes outside the top k get logits of their own, shaped like the teacher's, at every temperature."""

from __future__ import annotations

import numpy as np

from lpq.errors import LpqError
from lpq.format.header import DEFAULT_K, MS_TEMPERATURE, SAMPLE_TEMPERATURE, TAIL_POINTS, Quant, tail_ranks
from lpq.format.layout import Basis


def top_k(logits: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k largest entries of each row, descending, with their column indices: (B, k) each."""
    idx = (
        np.argpartition(-logits, k - 1, axis=1)[:, :k]
        if k < logits.shape[1]
        else np.tile(np.arange(k), (len(logits), 1))
    )
    vals = np.take_along_axis(logits, idx, axis=1)
    order = np.argsort(-vals, axis=1, kind="stable")
    return np.take_along_axis(vals, order, axis=1), np.take_along_axis(idx, order, axis=1)


def softmax(x: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = x.astype(np.float64) / temperature
    z = np.exp(z - z.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def quantize_logits(
    logits: np.ndarray,
    scheme: str,
    k: int,
    ms_temp: float = MS_TEMPERATURE,
    tail: int = TAIL_POINTS,
    sample_temp: float = SAMPLE_TEMPERATURE,
    seed: int | list[int] = 0,
    basis: Basis | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Stored (values, indices) of full (B, C) logits under a scheme: 'none', 'mr', 'ms', 'tail' (the k
    largest logits, then ``tail`` points of the sorted rest: (B, k + tail) values, (B, k) indices), 'sampled'
    (k classes drawn at ``sample_temp`` with a generator seeded by ``seed``) or 'basis' (the k largest logits,
    then their rows' coefficients on ``basis``: (B, k + r) values)."""
    if scheme == "none":
        return logits.astype(np.float32), None
    if scheme == "mr":
        vals, idx = top_k(logits, k)
        return vals.astype(np.float32), idx
    if scheme == "sampled":
        return sample_classes(logits, k, sample_temp, np.random.default_rng(seed))
    if scheme == "basis":
        if basis is None:
            raise ValueError("scheme basis needs the file's basis (fit_basis)")
        vals, idx = top_k(logits, k)
        return np.concatenate([vals, basis_coefficients(logits, idx, basis)], axis=1).astype(np.float32), idx
    if scheme == "tail":
        vals, idx = top_k(logits, k)
        rest = -np.sort(-logits, axis=1)[:, k:]
        points = rest[:, tail_ranks(rest.shape[1], tail)]
        return np.concatenate([vals, points], axis=1).astype(np.float32), idx
    probs = softmax(logits, ms_temp)
    vals, idx = top_k(probs, k)
    return vals.astype(np.float32), idx


def fit_basis(logits: np.ndarray, rank: int) -> Basis:
    """A basis for scheme basis: the mean of ``logits`` (N, C) and their first ``rank`` principal directions, each
    scaled by its singular value over sqrt(N), so that coefficients have about unit variance and share an 8-bit
    row's scale with the logits beside them (zero rows where the logits span fewer directions)."""
    x = logits.astype(np.float64)
    mean = x.mean(axis=0)
    _, s, vt = np.linalg.svd(x - mean, full_matrices=False)
    weights = np.zeros((rank, x.shape[1]))
    n = min(rank, len(s))
    weights[:n] = vt[:n] * (s[:n, None] / np.sqrt(len(x)))
    return Basis(mean.astype(np.float32), weights.astype(np.float32))


def basis_coefficients(logits: np.ndarray, idx: np.ndarray, basis: Basis) -> np.ndarray:
    """(B, r) least-squares coefficients of each row's logits outside its top k (``idx``) on ``basis``: a reader
    puts the k stored logits in place, so only the rest needs fitting. The r x r normal equations are those of
    all classes less the top k's share, which keeps memory at B x r x k for any number of classes."""
    w = basis.weights.astype(np.float64)  # (r, C)
    resid = logits.astype(np.float64) - basis.mean
    wk = np.moveaxis(w[:, idx], 0, -1)  # (B, k, r): the basis at each row's top k
    gram = w @ w.T - np.einsum("bkr,bks->brs", wk, wk)
    rhs = resid @ w.T - np.einsum("bkr,bk->br", wk, np.take_along_axis(resid, idx, axis=1))
    ridge = 1e-9 * max(float(np.trace(w @ w.T)), 1e-30)  # zero rows of a basis wider than its logits' span
    return np.linalg.solve(gram + ridge * np.eye(len(w)), rhs[..., None])[..., 0]


def sample_classes(
    logits: np.ndarray, k: int, temperature: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """k classes per row drawn with replacement from softmax(logits / temperature) (inverse CDF of k uniform
    draws), and their logits; each row sorted by logit, descending, as top-k rows are (they compress alike)."""
    cdf = np.cumsum(softmax(logits, temperature), axis=1)
    cdf /= cdf[:, -1:]
    u = rng.random((len(logits), k))
    idx = np.stack([np.searchsorted(c, row, side="right") for c, row in zip(cdf, u)]).reshape(len(u), k)
    idx = np.minimum(idx, logits.shape[1] - 1)  # u within rounding of 1
    vals = np.take_along_axis(logits, idx, axis=1)
    order = np.argsort(-vals, axis=1, kind="stable")
    return np.take_along_axis(vals, order, axis=1).astype(np.float32), np.take_along_axis(idx, order, axis=1)


def chosen_k(scheme: str, top_k: int | None, num_classes: int) -> int:
    """The k a code keeps: every class for full labels, ``top_k`` when given, else DEFAULT_K or all classes where
    there are fewer (relabel, quantize and import choose it alike)."""
    if scheme == "none":
        return num_classes
    return min(DEFAULT_K, num_classes) if top_k is None else top_k


def check_top_k(scheme: str, k: int, num_classes: int, tail: int) -> None:
    """Refuse a k the classes cannot hold, and tail points more than the classes outside the top k."""
    if not 1 <= k <= num_classes:
        raise LpqError("bad-top-k", f"--top-k {k} must be between 1 and the {num_classes} classes")
    if scheme == "tail" and num_classes - k < tail:
        raise LpqError("bad-top-k", f"--tail-points {tail} need as many classes outside the top {k}")


def encode(
    logits: np.ndarray, quant: Quant, seed: list[int], basis: Basis | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Stored (values, indices) of full logits under a header's quantization; ``seed`` (the relabel seed and
    the batch id, by convention) makes sampled labels the same whichever command writes them; ``basis``: the
    file's, for scheme basis."""
    return quantize_logits(
        logits,
        quant.scheme,
        quant.k,
        quant.ms_temperature or 1.0,
        quant.tail or 4,
        quant.sample_temperature or 1.0,
        seed,
        basis,
    )
