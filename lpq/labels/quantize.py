"""Top-k label quantization (METHOD.md section 2, stage 5): MR-k and MS-k, and re-quantizing a file.

MR-k keeps the k largest pre-softmax logits and their classes; training re-normalizes over them at its
current temperature. MS-k (FKD's marginal smoothing) keeps the k largest probabilities and spreads the
rest evenly. Re-quantizing can only lose information: to a smaller k, or to coarser values.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field

from lpq.errors import LpqError
from lpq.format import IndexCodec, LpqlReader, LpqlWriter, Quant, ValueCodec, index_bits


def top_k(logits: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k largest entries of each row, descending, with their column indices: (B, k) each."""
    idx = np.argpartition(-logits, k - 1, axis=1)[:, :k] if k < logits.shape[1] else np.tile(np.arange(k), (len(logits), 1))
    vals = np.take_along_axis(logits, idx, axis=1)
    order = np.argsort(-vals, axis=1, kind="stable")
    return np.take_along_axis(vals, order, axis=1), np.take_along_axis(idx, order, axis=1)


def softmax(x: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = x.astype(np.float64) / temperature
    z = np.exp(z - z.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def quantize_logits(
    logits: np.ndarray, scheme: str, k: int, ms_temperature: float = 1.0
) -> tuple[np.ndarray, np.ndarray | None]:
    """Stored (values, indices) of full (B, C) logits under a scheme: 'none', 'mr' or 'ms'."""
    if scheme == "none":
        return logits.astype(np.float32), None
    if scheme == "mr":
        vals, idx = top_k(logits, k)
        return vals.astype(np.float32), idx
    probs = softmax(logits, ms_temperature)
    vals, idx = top_k(probs, k)
    return vals.astype(np.float32), idx


class QuantizeConfig(BaseModel):
    labels: Path = Field(description="input .lpql file (left untouched)")
    output: Path
    scheme: Literal["none", "mr", "ms"] = "mr"
    top_k: int | None = Field(None, ge=1, description="classes kept per sample; default 10 (all for 'none')")
    values: Literal["f32", "f16", "i8", "i4"] = "i8"
    ms_temperature: float = Field(1.0, gt=0)


class QuantizeResult(BaseModel):
    output: Path
    scheme: str
    k: int
    values: str
    file_bytes_before: int
    file_bytes_after: int


def check_requantize(src: Quant, scheme: str, k: int, ms_temperature: float) -> None:
    """Refuse conversions that would need information the stored labels no longer hold."""
    if src.scheme == "none":
        return
    if scheme != src.scheme:
        raise LpqError("quantize-lost", f"cannot turn {src.scheme.upper()}-{src.k} labels into {scheme.upper()}",
                       "the logits outside the stored top-k are gone; quantize the full-label file instead")
    if k > src.k:
        raise LpqError("quantize-lost", f"cannot raise k from {src.k} to {k}: the other classes were not stored",
                       "quantize the full-label file instead")
    if scheme == "ms" and ms_temperature != src.ms_temperature:
        raise LpqError("quantize-lost", "MS probabilities cannot be re-tempered without the full logits")


def requantize(values: np.ndarray, indices: np.ndarray | None, src: Quant, scheme: str, k: int,
               ms_temperature: float) -> tuple[np.ndarray, np.ndarray | None]:
    """Stored labels of one batch under a scheme `check_requantize` accepted."""
    if src.scheme == "none":
        return quantize_logits(values, scheme, k, ms_temperature)
    return values[:, :k], None if indices is None else indices[:, :k]


def quantize_file(cfg: QuantizeConfig) -> QuantizeResult:
    from lpq.labels.prune import check_paths

    check_paths(cfg.labels, cfg.output)
    scheme, values, ms_temperature = cfg.scheme, cfg.values, cfg.ms_temperature
    with LpqlReader(cfg.labels) as r:
        h = r.header
        c = h.num_classes
        k = c if scheme == "none" else (min(10, c) if cfg.top_k is None else cfg.top_k)
        if not 1 <= k <= c:
            raise LpqError("bad-top-k", f"--top-k {k} must be between 1 and the {c} classes")
        if scheme == "none" and h.quant.scheme != "none":
            raise LpqError("quantize-lost", "top-k labels cannot become full labels again")
        check_requantize(h.quant, scheme, k, ms_temperature)
        quant = Quant(scheme=scheme, k=k, values=ValueCodec(id=values, relative=values in ("i8", "i4") and scheme != "ms"),
                      indices=None if scheme == "none" else IndexCodec(bits=index_bits(c)),
                      ms_temperature=ms_temperature if scheme == "ms" else None)
        header = h.model_copy(update={"quant": quant})
        writer = LpqlWriter(cfg.output, header)
        try:
            for bid in r.batch_ids:
                rec = r.read(int(bid))
                vals, idx = requantize(rec.values, rec.indices, h.quant, scheme, k, ms_temperature)
                writer.add(dataclasses.replace(rec, values=vals.astype(np.float32), indices=idx))
            writer.finish(r.calibration)  # describes the teacher's logits; its `topk` names the k of its masses
        except BaseException:
            writer.discard()
            raise
        before = r.size
    return QuantizeResult(output=cfg.output, scheme=scheme, k=k, values=values, file_bytes_before=before,
                          file_bytes_after=cfg.output.stat().st_size)
