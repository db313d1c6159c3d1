"""Add to spec/vectors/ (run from the repository root: python spec/make_vectors.py).

Vectors are committed; a later version of lpq MUST still decode them as their JSON says. This script only
writes vectors that do not exist yet (the 1.0 files stay as a 1.0 writer made them), so rerunning it
never makes a failing reader pass.
"""

from __future__ import annotations

import json
import struct
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from lpql_factory import make_header, make_records, write_file

from lpq.format import LpqlReader
from lpq.format.layout import FRAME, INDEX_ENTRY, footer, frame
from lpq.format.rng import CropSpec, derive_key, draws, epoch_order, mix64, sample_augment

OUT = Path(__file__).parent / "vectors"

FILES = {
    "full-f16-cutmix": {"scheme": "none", "values": "f16"},
    "mr3-i8-pruned": {"scheme": "mr", "k": 3, "values": "i8", "kept": [1, 4, 5]},
    "ms4-i4-mixup": {"scheme": "ms", "k": 4, "values": "i4", "mix": "mixup", "kept": [0, 2]},
    "mr2-f32-c300": {"scheme": "mr", "k": 2, "values": "f32", "classes": 300, "kept": [3], "indices": "bitpack"},
    "mr3-f16-stored-1.1": {"scheme": "mr", "k": 3, "values": "f16", "stored": True, "kept": [0, 1, 3]},
    "full-i8-by-sample-1.2": {"scheme": "none", "values": "i8-by-sample", "mix": "mixup"},
    "full-i4-by-sample-1.2": {
        "scheme": "none",
        "values": "i4-by-sample",
        "classes": 7,
        "images": 21,
        "kept": [2, 4, 5],
    },
    "mr4-i8-split-1.3": {"scheme": "mr", "k": 4, "values": "i8", "classes": 600, "kept": [0, 2, 5]},
    # epoch 1 whole (batches 3-5), then batch 1 of epoch 0: every image labelled once, eight of them twice
    "mr2-i8-cover-1.4": {"scheme": "mr", "k": 2, "values": "i8", "kept": [1, 3, 4, 5], "strategy": "cover"},
    # the top 3 of 12 classes, then 4 points of the 9 others at ranks 0, 1, 4, 8
    "tail3-i8-1.5": {"scheme": "tail", "k": 3, "tail": 4, "values": "i8", "classes": 12, "kept": [0, 3, 4]},
    "sampled5-i8-1.5": {"scheme": "sampled", "k": 5, "values": "i8", "kept": [1, 2, 5]},
    # the top 3 of 12 classes and 2 coefficients on the file's basis (BASE), absolute 8-bit codes
    "basis3+2-i8-1.6": {"scheme": "basis", "k": 3, "rank": 2, "values": "i8", "classes": 12, "kept": [0, 2, 5]},
}


def decode(path: Path) -> dict:
    with LpqlReader(path) as r:
        h = r.header
        batches = []
        for bid in r.batch_ids:
            rec = r.read(int(bid))
            aug = r.augment(rec, np.full((rec.size, 2), (h.images.height, h.images.width)))
            batches.append(
                {
                    "id": int(bid),
                    "epoch": rec.epoch,
                    "batch": rec.batch,
                    "size": rec.size,
                    "mix_lambda": rec.mix_lambda,
                    "mix_box": list(rec.mix_box),
                    "image_indices": r.image_indices(rec).tolist(),
                    "augment": aug.table().tolist(),
                    "values": rec.values.astype(float).tolist(),
                    "indices": None if rec.indices is None else rec.indices.tolist(),
                }
            )
        doc = {"header": json.loads(h.model_dump_json()), "batches": batches}
        if r.basis is not None:  # 1.6: the BASE chunk's numbers, as float32
            doc["basis"] = {
                "mean": r.basis.mean.astype(float).tolist(),
                "weights": r.basis.weights.astype(float).tolist(),
            }
        return doc


def rng_vectors() -> dict:
    spec = CropSpec((0.08, 1.0), (3 / 4, 4 / 3), 0.5)
    zs = [0, 1, 2**63, 2**64 - 1]
    return {
        "mix64": {str(z): int(mix64(np.array([z], np.uint64))[0]) for z in zs},
        "key": {"S=7,w=(2,1,3)": derive_key(7, 2, 1, 3), "S=0,w=()": derive_key(0)},
        "draw": {"key=12345,c=0..3": [int(x) for x in draws(12345, np.arange(4, dtype=np.uint64))]},
        "epoch_order": {"S=7,e=0,N=10": epoch_order(7, 0, 10).tolist(), "S=7,e=1,N=10": epoch_order(7, 1, 10).tolist()},
        "crops": {
            "S=7,e=0,b=0,H=32,W=32,default": sample_augment(7, 0, 0, np.full((4, 2), 32), spec).table().tolist(),
            "S=1,e=2,b=3,H=224,W=300,default": sample_augment(1, 2, 3, np.full((4, 2), (224, 300)), spec)
            .table()
            .tolist(),
        },
    }


def _chunks(data: bytes) -> list[tuple[bytes, int, bytes]]:
    """(type, id, payload) of every indexed chunk of a good file."""
    index_offset = struct.unpack_from("<Q", data, len(data) - 24)[0]
    (count,) = struct.unpack_from("<I", data, index_offset + FRAME.size)
    entries = np.frombuffer(data, INDEX_ENTRY, count, index_offset + FRAME.size + 4)
    return [
        (
            bytes(e["type"]),
            int(e["id"]),
            data[int(e["offset"]) + FRAME.size : int(e["offset"]) + FRAME.size + int(e["length"])],
        )
        for e in entries
    ]


def _build(preamble: bytes, chunks: list[tuple[bytes, int, bytes]]) -> bytes:
    body = bytearray(preamble)
    index = []
    for ctype, cid, payload in chunks:
        index.append((ctype, cid, len(body), len(payload)))
        body += frame(ctype, payload)
    table = np.array(index, dtype=INDEX_ENTRY)
    offset = len(body)
    return bytes(body + frame(b"INDX", struct.pack("<I", len(table)) + table.tobytes()) + footer(offset))


def bad_files_1_1(stored: bytes, good: bytes) -> dict[str, bytes]:
    """Broken files of version 1.1: a stored augmentation whose CRC field lies, and a header over a limit."""
    chunks = _chunks(stored)
    ctype, cid, payload = chunks[1]
    lying = bytearray(payload)
    lying[12] ^= 0xFF  # aug_crc, in a chunk whose own checksum is then recomputed: only the table check sees it
    aug = [chunks[0], (ctype, cid, bytes(lying)), *chunks[2:]]
    good_chunks = _chunks(good)
    head = json.loads(good_chunks[0][2])
    head["images"]["count"] = 2**40  # a reader must refuse before it derives an epoch order of 2^40 entries
    head["relabel"]["batches_per_epoch"] = -(-(2**40) // head["relabel"]["batch_size"])
    over = [(b"HEAD", 0, json.dumps(head).encode()), *good_chunks[1:]]
    return {"lpql-aug-mismatch": _build(stored[:16], aug), "lpql-over-limit": _build(good[:16], over)}


def bad_files_1_4(good: bytes) -> dict[str, bytes]:
    """Broken headers whose JSON is valid and whose numbers a crafted file could carry (1.4 readers refuse them):
    a zero normalization std (pixels would be divided by it) and an infinite mixing alpha (1e999 parses as inf)."""
    chunks = _chunks(good)
    head = json.loads(chunks[0][2])
    zero = {**head, "augment": {**head["augment"], "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.0, 0.25]}}
    text = json.dumps(head).replace('"mix_alpha": 1.0', '"mix_alpha": 1e999')
    assert "1e999" in text
    return {
        "lpql-bad-header+zero-std": _build(good[:16], [(b"HEAD", 0, json.dumps(zero).encode()), *chunks[1:]]),
        "lpql-bad-header+infinite-alpha": _build(good[:16], [(b"HEAD", 0, text.encode()), *chunks[1:]]),
    }


def bad_files_1_5(tail: bytes) -> dict[str, bytes]:
    """A tail header asking for more tail points than classes outside its top k (6 of 12 kept, 8 points), and a
    sampled header without the temperature its classes were drawn at."""
    chunks = _chunks(tail)
    head = json.loads(chunks[0][2])
    head["quant"] = {**head["quant"], "k": 6, "tail": 8}
    missing = json.loads(chunks[0][2])
    missing["quant"] = {**missing["quant"], "scheme": "sampled", "tail": None}  # and no sample_temperature
    return {
        "lpql-bad-header+tail-points": _build(tail[:16], [(b"HEAD", 0, json.dumps(head).encode()), *chunks[1:]]),
        "lpql-bad-header+sample-temperature": _build(
            tail[:16], [(b"HEAD", 0, json.dumps(missing).encode()), *chunks[1:]]
        ),
    }


def bad_files_1_6(basis: bytes) -> dict[str, bytes]:
    """A basis file without its BASE chunk, and one whose BASE is a float short."""
    chunks = _chunks(basis)
    assert chunks[1][0] == b"BASE"
    short = (b"BASE", 0, chunks[1][2][:-4])
    return {
        "lpql-bad-basis+missing": _build(basis[:16], [chunks[0], *chunks[2:]]),
        "lpql-bad-basis+length": _build(basis[:16], [chunks[0], short, *chunks[2:]]),
    }


def bad_files(good: bytes) -> dict[str, bytes]:
    """Broken variants of one good file, each named for the error a reader MUST raise."""
    chunks = _chunks(good)
    head = json.loads(chunks[0][2])
    head["quant"]["k"] = 99  # valid JSON, valid CRC, broken constraint (k > classes)
    bad_header = [(b"HEAD", 0, json.dumps(head).encode()), *chunks[1:]]
    unknown = [*chunks[:1], (b"XTRA", 0, b"critical and unknown"), *chunks[1:]]
    future = bytearray(good)
    future[8:10] = struct.pack("<H", 2)
    flags = bytearray(good)
    flags[12] = 1
    flipped = bytearray(good)
    flipped[16 + FRAME.size + len(chunks[0][2]) + 40] ^= 0x04  # inside the first batch chunk
    bad_footer = bytearray(good)
    bad_footer[-20] ^= 0x01
    return {
        "lpql-bad-magic": b"PK\x03\x04" + good[4:],
        "lpql-truncated": good[: len(good) // 2],
        "lpql-unsupported-version": bytes(future),
        "lpql-reserved-bits": bytes(flags),
        "lpql-chunk-checksum": bytes(flipped),
        "lpql-footer-checksum": bytes(bad_footer),
        "lpql-bad-header": _build(good[:16], bad_header),
        "lpql-unknown-chunk": _build(good[:16], unknown),
        "lpql-bad-index": _build(good[:16], chunks[:1] + chunks[2:]),
    }


def main() -> None:
    OUT.mkdir(exist_ok=True)
    (OUT / "bad").mkdir(exist_ok=True)
    for name, kw in FILES.items():
        if (OUT / f"{name}.lpql").exists():
            continue
        header = make_header(**kw)
        path = write_file(OUT / f"{name}.lpql", header, make_records(header, seed=len(name)))
        (OUT / f"{name}.json").write_text(json.dumps(decode(path), indent=1) + "\n")
    if not (OUT / "rng.json").exists():
        (OUT / "rng.json").write_text(json.dumps(rng_vectors(), indent=1) + "\n")
    good = (OUT / "mr3-i8-pruned.lpql").read_bytes()
    stored = (OUT / "mr3-f16-stored-1.1.lpql").read_bytes()
    tail = (OUT / "tail3-i8-1.5.lpql").read_bytes()
    basis = (OUT / "basis3+2-i8-1.6.lpql").read_bytes()
    broken = {
        **bad_files(good),
        **bad_files_1_1(stored, good),
        **bad_files_1_4(good),
        **bad_files_1_5(tail),
        **bad_files_1_6(basis),
    }
    for ref, data in broken.items():
        if not (OUT / "bad" / f"{ref}.lpql").exists():
            (OUT / "bad" / f"{ref}.lpql").write_bytes(data)


if __name__ == "__main__":
    main()
