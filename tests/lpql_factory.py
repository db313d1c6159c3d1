"""Small, deterministic `.lpql` files for the format tests (no torch, no images: simulated logits)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lpq.format import (
    Augment,
    Basis,
    BatchRecord,
    Header,
    ImageSet,
    IndexCodec,
    LpqlWriter,
    Prune,
    Quant,
    Relabel,
    StoredAugment,
    Teacher,
    ValueCodec,
    index_bits,
)
from lpq.format.header import BY_SAMPLE
from lpq.format.rng import CropSpec, sample_augment
from lpq.method.topk import encode, fit_basis


def make_header(
    *,
    classes: int = 10,
    images: int = 20,
    batch_size: int = 8,
    epochs: int = 2,
    scheme: str = "none",
    k: int | None = None,
    values: str = "f16",
    kept: list[int] | None = None,
    mix: str = "cutmix",
    stored: bool = False,
    indices: str | None = None,
    strategy: str = "none",
    tail: int | None = None,
    rank: int | None = None,
) -> Header:
    bpe = -(-images // batch_size)
    k = classes if scheme == "none" else (k or 3)
    return Header(
        tool="lpq-test",
        num_classes=classes,
        class_names=[f"c{i}" for i in range(classes)],
        images=ImageSet(fingerprint="ab" * 32, count=images, height=8, width=8),
        teacher=Teacher(architecture="convnet", weights_sha256="cd" * 32),
        augment=Augment(input_size=8, mix=mix, stored=stored),
        relabel=Relabel(epochs=epochs, batch_size=batch_size, batches_per_epoch=bpe, seed=7),
        prune=Prune(
            ratio=epochs * bpe / len(kept) if kept is not None else 1.0,
            strategy=strategy,
            kept=kept if kept is not None else list(range(epochs * bpe)),
        ),
        quant=Quant(
            scheme=scheme,
            k=k,
            values=ValueCodec.for_labels(values.removesuffix(BY_SAMPLE), scheme, k, values.endswith(BY_SAMPLE)),
            indices=None
            if scheme == "none"
            else IndexCodec.for_classes(classes)
            if indices is None
            else IndexCodec(id=indices, bits=index_bits(classes)),
            ms_temperature=1.0 if scheme == "ms" else None,
            tail=(tail or 3) if scheme == "tail" else None,
            sample_temperature=4.0 if scheme == "sampled" else None,
            rank=(2 if rank is None else rank) if scheme == "basis" else None,
        ),
    )


def make_basis(header: Header) -> Basis | None:
    """The basis of a scheme basis header's files here: fitted on seeded logits like make_records' (None for
    other schemes)."""
    q = header.quant
    if q.scheme != "basis":
        return None
    return fit_basis(np.random.default_rng(99).normal(0, 3, (256, header.num_classes)), q.rank or 0)


def make_records(header: Header, seed: int = 0) -> list[BatchRecord]:
    rng = np.random.default_rng(seed)
    r, q = header.relabel, header.quant
    spec = CropSpec.of(header.augment)
    out = []
    for bid in header.prune.kept:
        epoch, batch = divmod(bid, r.batches_per_epoch)
        n = int(rng.integers(1, r.batch_size + 1)) if header.augment.stored else header.batch_size_of(bid)
        hw = np.full((n, 2), 8)
        aug = sample_augment(r.seed, epoch, batch, hw, spec)
        stored = None
        if header.augment.stored:  # as imported labels hold them: any images, crops and partners
            images = rng.integers(0, header.images.count, n)
            stored = StoredAugment(images, aug, rng.permutation(n))
        logits = rng.normal(0, 3, (n, header.num_classes)).astype(np.float32)
        if q.scheme == "none":
            values, indices = logits, None
        elif q.scheme in ("tail", "sampled", "basis"):
            values, indices = encode(logits, q, [r.seed, bid], make_basis(header))
        else:
            indices = np.argsort(-logits, axis=1, kind="stable")[:, : q.k]
            values = np.take_along_axis(logits, indices, axis=1)
            if q.scheme == "ms":
                p = np.exp(logits - logits.max(axis=1, keepdims=True))
                values = np.take_along_axis(p / p.sum(axis=1, keepdims=True), indices, axis=1)
        out.append(
            BatchRecord(epoch, batch, aug.crc32(), 0.75, (1, 2, 5, 6), values.astype(np.float32), indices, stored)
        )
    return out


def write_file(path: Path, header: Header, records: list[BatchRecord]) -> Path:
    with LpqlWriter(path, header, basis=make_basis(header)) as w:
        for rec in records:
            w.add(rec)
        return w.finish()
