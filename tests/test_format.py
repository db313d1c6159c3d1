"""The `.lpql` container: round trips, committed vectors, and every kind of broken file."""

from __future__ import annotations

import json
import math
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lpql_factory import make_basis, make_header, make_records, write_file

from lpq.format import Header, IndexCodec, LpqlError, LpqlReader, LpqlWriter, partial_path
from lpq.format.layout import crc32
from lpq.format.rng import CropSpec, derive_key, draws, epoch_order, mix64, sample_augment

VECTORS = Path(__file__).resolve().parents[1] / "spec" / "vectors"
CASES = [
    ("none", "f32", None),
    ("none", "f16", None),
    ("none", "i8", None),
    ("none", "i8-by-sample", None),  # 1.2: what writers now store for full labels
    ("none", "f32-by-sample", None),
    ("mr", "f16", 3),
    ("mr", "i8", 3),
    ("mr", "i4", 5),
    ("ms", "i8", 4),
    ("ms", "f32", 2),
    ("mr", "i4-by-sample", 5),
]


def decode_all(path: Path) -> list:
    with LpqlReader(path) as r:
        out = []
        for bid in r.batch_ids:
            rec = r.read(int(bid))
            out.append((rec.epoch, rec.batch, rec.mix_lambda, rec.mix_box, rec.values, rec.indices))
        return out


def same(a: list, b: list) -> bool:
    return len(a) == len(b) and all(
        x[:4] == y[:4]
        and np.array_equal(x[4], y[4])
        and (x[5] is None) == (y[5] is None)
        and (x[5] is None or np.array_equal(x[5], y[5]))
        for x, y in zip(a, b)
    )


@pytest.mark.parametrize("scheme,values,k", CASES)
def test_round_trip_within_codec_error(tmp_path: Path, scheme: str, values: str, k: int | None) -> None:
    h = make_header(scheme=scheme, values=values, k=k, classes=12, images=21, batch_size=8)
    recs = make_records(h)
    write_file(tmp_path / "a.lpql", h, recs)
    with LpqlReader(tmp_path / "a.lpql") as r:
        assert r.header == h
        for rec in recs:
            got = r.read(rec.epoch * h.relabel.batches_per_epoch + rec.batch)
            assert got.size == rec.size and got.mix_box == rec.mix_box
            want = rec.values - (rec.values.max(axis=1, keepdims=True) if h.quant.values.relative else 0)
            span = rec.values.max(axis=1) - rec.values.min(axis=1)
            kind = h.quant.values.kind
            levels = {"i8": 255, "i4": 15}.get(kind)
            if kind == "f32":
                bound = np.zeros_like(span)
            elif kind == "f16":
                bound = np.abs(rec.values).max(axis=1) * 2**-10
            else:
                # half a code step plus float16 rounding of the row maximum and of the scale
                bound = span / levels * 0.5 + np.abs(rec.values).max(axis=1) * 2**-9 + span * 2**-9
            assert np.all(np.abs(got.values - want).max(axis=1) <= bound + 1e-6)
            if rec.indices is not None:
                assert np.array_equal(got.indices, rec.indices)


def test_last_partial_batch_and_derived_images_cover_each_epoch(tmp_path: Path) -> None:
    h = make_header(images=21, batch_size=8, epochs=2)
    write_file(tmp_path / "a.lpql", h, make_records(h))
    with LpqlReader(tmp_path / "a.lpql") as r:
        for epoch in range(2):
            seen = np.concatenate([r.image_indices(r.read(epoch * 3 + b)) for b in range(3)])
            assert sorted(seen.tolist()) == list(range(21))
        assert r.read(2).size == 5


@pytest.mark.parametrize("name", sorted(p.stem for p in VECTORS.glob("*.lpql")))
def test_committed_vectors_decode_as_recorded(name: str) -> None:
    expect = json.loads((VECTORS / f"{name}.json").read_text())
    with LpqlReader(VECTORS / f"{name}.lpql") as r:
        assert r.header == Header.model_validate(expect["header"])
        assert r.batch_ids.tolist() == [b["id"] for b in expect["batches"]]
        for b in expect["batches"]:
            rec = r.read(b["id"])
            assert (rec.epoch, rec.batch, rec.size) == (b["epoch"], b["batch"], b["size"])
            assert rec.mix_lambda == pytest.approx(b["mix_lambda"], abs=0) and list(rec.mix_box) == b["mix_box"]
            assert r.image_indices(rec).tolist() == b["image_indices"]
            hw = np.full((rec.size, 2), (r.header.images.height, r.header.images.width))
            assert r.augment(rec, hw).table().tolist() == b["augment"]
            assert np.array_equal(rec.values, np.array(b["values"], np.float32))
            assert (rec.indices is None and b["indices"] is None) or rec.indices.tolist() == b["indices"]
        assert (r.basis is None) == ("basis" not in expect)
        if r.basis is not None:  # 1.6: the BASE numbers
            assert np.array_equal(r.basis.mean, np.array(expect["basis"]["mean"], np.float32))
            assert np.array_equal(r.basis.weights, np.array(expect["basis"]["weights"], np.float32))


def test_by_sample_vector_lays_codes_out_as_the_spec_says() -> None:
    """Section 5.2 read by hand: relative scale f16[n], then u8 codes of the (n, k) matrix, sample 0's first."""
    from lpq.format.layout import BatchCodec

    with LpqlReader(VECTORS / "full-i8-by-sample-1.2.lpql") as r:
        codec = BatchCodec(r.header)
        for bid in r.batch_ids:
            rec = r.read(int(bid))
            n, k = rec.values.shape
            raw = codec.sections(int(bid), r.payload(int(bid)))[-1]
            scale = np.frombuffer(raw, "<f2", n).astype(np.float32)
            codes = np.frombuffer(raw, np.uint8, n * k, 2 * n).reshape(n, k)
            assert np.array_equal(rec.values, np.float32(0) - codes.astype(np.float32) * scale[:, None])


def test_basis_vector_lays_its_basis_out_as_the_spec_says() -> None:
    """Section 2.5 read by hand: the chunk after HEAD is BASE, float32 mean[C] then weights[r][C]; the value rows
    are k logits then r coefficients, absolute 8-bit codes (scale f16[n], hi f16[n], then codes)."""
    data = (VECTORS / "basis3+2-i8-1.6.lpql").read_bytes()
    _, head_length, _ = struct.unpack_from("<4sII", data, 16)
    base_at = 16 + 12 + head_length
    ctype, length, _ = struct.unpack_from("<4sII", data, base_at)
    floats = np.frombuffer(data, "<f4", length // 4, base_at + 12)
    with LpqlReader(VECTORS / "basis3+2-i8-1.6.lpql") as r:
        c, q = r.header.num_classes, r.header.quant
        assert ctype == b"BASE" and length == 4 * c * (q.rank + 1) and (q.k, q.rank) == (3, 2)
        assert np.array_equal(floats[:c], r.basis.mean) and np.array_equal(floats[c:].reshape(2, c), r.basis.weights)
        assert not q.values.relative and r.read(int(r.batch_ids[0])).values.shape[1] == q.k + q.rank


def test_split_vector_lays_indices_out_as_the_spec_says() -> None:
    """Section 5.1 written by hand: low bytes of the (n, k) indices sample-major, then their 2-bit high parts."""
    from lpq.format.codecs import pack_bits
    from lpq.format.layout import BatchCodec

    with LpqlReader(VECTORS / "mr4-i8-split-1.3.lpql") as r:
        assert r.header.quant.indices == IndexCodec(id="split", bits=10)
        codec = BatchCodec(r.header)
        for bid in r.batch_ids:
            flat = r.read(int(bid)).indices.reshape(-1)
            raw = codec.sections(int(bid), r.payload(int(bid)))[2]
            assert bytes(raw) == (flat % 256).astype(np.uint8).tobytes() + pack_bits(flat // 256, 2)


def test_generator_matches_recorded_vectors() -> None:
    v = json.loads((VECTORS / "rng.json").read_text())
    for z, out in v["mix64"].items():
        assert int(mix64(np.array([int(z)], np.uint64))[0]) == out
    assert derive_key(7, 2, 1, 3) == v["key"]["S=7,w=(2,1,3)"]
    assert [int(x) for x in draws(12345, np.arange(4, dtype=np.uint64))] == v["draw"]["key=12345,c=0..3"]
    assert epoch_order(7, 1, 10).tolist() == v["epoch_order"]["S=7,e=1,N=10"]
    spec = CropSpec((0.08, 1.0), (3 / 4, 4 / 3), 0.5)
    got = sample_augment(1, 2, 3, np.full((4, 2), (224, 300)), spec).table().tolist()
    assert got == v["crops"]["S=1,e=2,b=3,H=224,W=300,default"]


def test_checksum_is_zlibs_crc32() -> None:
    # The spec's CRC-32 is zlib's; the reader computes it with ISA-L, which must agree byte for byte, chained too.
    rng = np.random.default_rng(0)
    for n in (0, 1, 7, 64, 4097, 100_003):
        data = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
        assert crc32(data) == zlib.crc32(data)
        assert crc32(data, 0xDEADBEEF) == zlib.crc32(data, 0xDEADBEEF)
    assert crc32(b"123456789") == 0xCBF43926  # the CRC-32/ISO-HDLC check value


def test_mix64_reference_values() -> None:
    # SplitMix64 seeded with 0 yields 0xE220A8397B1DCDAF first: an independent published reference.
    assert int(mix64(np.array([0], np.uint64))[0]) == 0xE220A8397B1DCDAF


def test_crops_follow_torchvision_distribution() -> None:
    import torch
    from torchvision.transforms import RandomResizedCrop

    spec = CropSpec((0.08, 1.0), (3 / 4, 4 / 3), 0.5)
    aug = sample_augment(3, 0, 0, np.full((4000, 2), 32), spec)
    area = aug.height * aug.width / 1024
    torch.manual_seed(0)
    ref = (
        np.array(
            [
                np.prod(RandomResizedCrop.get_params(torch.zeros(1, 32, 32), [0.08, 1.0], [3 / 4, 4 / 3])[2:])
                for _ in range(4000)
            ]
        )
        / 1024
    )
    assert area.min() >= 0.08 * 0.9 and area.max() <= 1.0
    assert abs(area.mean() - ref.mean()) < 0.02 and abs(area.std() - ref.std()) < 0.02
    assert np.all(aug.top + aug.height <= 32) and np.all(aug.left + aug.width <= 32)
    assert abs(aug.flip.mean() - 0.5) < 0.03


@pytest.mark.parametrize("name", sorted(p.stem for p in (VECTORS / "bad").glob("*.lpql")))
def test_broken_vectors_raise_their_named_error(name: str) -> None:
    with pytest.raises(LpqlError) as e, LpqlReader(VECTORS / "bad" / f"{name}.lpql") as r:
        r.verify()
    assert e.value.ref == name.split("+")[0]  # REF or REF+CASE


@pytest.fixture(scope="module")
def small_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list]:
    path = tmp_path_factory.mktemp("small") / "s.lpql"
    h = make_header(scheme="mr", values="i8", k=3, images=12, batch_size=5, epochs=1)
    write_file(path, h, make_records(h))
    return path, decode_all(path)


def test_truncation_at_every_byte_is_refused(small_file: tuple[Path, list], tmp_path: Path) -> None:
    path, _ = small_file
    data = path.read_bytes()
    cut = tmp_path / "cut.lpql"
    for n in range(len(data)):
        cut.write_bytes(data[:n])
        with pytest.raises(LpqlError), LpqlReader(cut) as r:
            r.verify()


@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_random_corruption_is_refused_or_harmless(
    small_file: tuple[Path, list], tmp_path: Path, data: st.DataObject
) -> None:
    path, original = small_file
    raw = bytearray(path.read_bytes())
    for _ in range(data.draw(st.integers(1, 3))):
        pos = data.draw(st.integers(0, len(raw) - 1))
        raw[pos] ^= data.draw(st.integers(1, 255))
    bad = tmp_path / "bad.lpql"
    bad.write_bytes(bytes(raw))
    try:
        with LpqlReader(bad) as r:
            r.verify()
        decoded = decode_all(bad)
    except LpqlError:
        return
    assert same(decoded, original)


def test_header_size_is_capped_before_reading(tmp_path: Path) -> None:
    """A well-formed file (tiling, checksums) whose header is over the cap is refused by the cap itself."""
    from lpq.format.layout import INDEX_ENTRY, MAX_HEADER_BYTES, PREAMBLE, footer, frame

    payload = b'{"pad": "' + b"x" * MAX_HEADER_BYTES + b'"}'
    body = PREAMBLE.pack(b"\x89LPQL\r\n\x1a", 1, 0, 0) + frame(b"HEAD", payload)
    index = np.array([(b"HEAD", 0, PREAMBLE.size, len(payload))], dtype=INDEX_ENTRY)
    data = body + frame(b"INDX", np.uint32(1).tobytes() + index.tobytes()) + footer(len(body))
    (tmp_path / "h.lpql").write_bytes(data)
    with pytest.raises(LpqlError) as e:
        LpqlReader(tmp_path / "h.lpql")
    assert e.value.ref == "lpql-header-too-large"


def test_resume_keeps_intact_chunks_and_matches_uninterrupted(tmp_path: Path) -> None:
    h = make_header(scheme="mr", values="i8", k=3, epochs=3)
    recs = make_records(h)
    whole = write_file(tmp_path / "whole.lpql", h, recs)
    target = tmp_path / "resumed.lpql"
    w = LpqlWriter(target, h)
    for rec in recs[:4]:
        w.add(rec)
    w.close()
    part = partial_path(target)
    part.write_bytes(part.read_bytes()[:-7])  # the fourth chunk was cut mid-write
    assert not target.exists()
    w = LpqlWriter(target, h, resume=True)
    assert w.stored == [0, 1, 2]
    for rec in recs[3:]:
        w.add(rec)
    w.finish()
    assert target.read_bytes() == whole.read_bytes()
    assert not part.exists()


def test_resume_refuses_other_settings(tmp_path: Path) -> None:
    h = make_header()
    w = LpqlWriter(tmp_path / "x.lpql", h)
    w.close()
    with pytest.raises(LpqlError) as e:
        LpqlWriter(tmp_path / "x.lpql", make_header(epochs=3), resume=True)
    assert e.value.ref == "resume-mismatch"


def test_a_basis_file_resumes_with_its_own_basis_and_refuses_another(tmp_path: Path) -> None:
    """A partial file of scheme basis keeps its BASE after HEAD: partial_basis reads it back (what a resumed relabel
    keeps), resuming with it ends as an uninterrupted run does, and another basis is other settings."""
    from lpq.format import Basis
    from lpq.format.writer import partial_basis

    h = make_header(scheme="basis", values="i8", k=3, rank=2, classes=12, epochs=3)
    recs, basis = make_records(h), make_basis(h)
    whole = write_file(tmp_path / "whole.lpql", h, recs)
    target = tmp_path / "resumed.lpql"
    with LpqlWriter(target, h, basis=basis) as w:
        for rec in recs[:3]:
            w.add(rec)
    held = partial_basis(partial_path(target), h)
    assert held is not None and held.payload() == basis.payload()
    with pytest.raises(LpqlError) as e:
        LpqlWriter(target, h, basis=Basis(basis.mean + 1, basis.weights), resume=True)
    assert e.value.ref == "resume-mismatch"
    w = LpqlWriter(target, h, basis=held, resume=True)
    assert w.stored == [0, 1, 2]
    for rec in recs[3:]:
        w.add(rec)
    w.finish()
    assert target.read_bytes() == whole.read_bytes()
    with pytest.raises(LpqlError) as e:
        LpqlWriter(tmp_path / "no-basis.lpql", h)
    assert e.value.ref == "lpql-bad-basis"


def test_finish_refuses_missing_batches_and_out_of_order_writes(tmp_path: Path) -> None:
    h = make_header()
    recs = make_records(h)
    w = LpqlWriter(tmp_path / "x.lpql", h)
    w.add(recs[1])
    with pytest.raises(LpqlError):
        w.add(recs[0])
    with pytest.raises(LpqlError) as e:
        w.finish()
    assert e.value.ref == "lpql-incomplete"
    w.close()


def test_augmentation_of_other_image_sizes_is_refused(tmp_path: Path) -> None:
    h = make_header()
    write_file(tmp_path / "a.lpql", h, make_records(h))
    with LpqlReader(tmp_path / "a.lpql") as r:
        rec = r.read(0)
        with pytest.raises(LpqlError) as e:
            r.augment(rec, np.full((rec.size, 2), 64))
    assert e.value.ref == "lpql-aug-mismatch"


def test_format_package_needs_neither_torch_nor_typer() -> None:
    import subprocess
    import sys

    code = "import sys, lpq.format, lpq.format.summary; sys.exit(int('torch' in sys.modules or 'typer' in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


@pytest.mark.parametrize("bits", [1, 3, 4, 7, 8, 10, 13, 16, 17, 25, 26, 32])
def test_bit_packing_round_trips_at_every_width_in_either_order(bits: int) -> None:
    from lpq.format.codecs import pack_bits, unpack

    v = np.random.default_rng(bits).integers(0, 1 << bits, 1001, dtype=np.uint64)
    packed = pack_bits(v, bits)
    assert len(packed) == (1001 * bits + 7) // 8
    assert np.array_equal(unpack(packed, bits, 1001, 1)[:, 0].astype(np.uint64), v)  # one rank: stream order
    ranks = v[:875].reshape(7, 125)  # rank-major (k, rows), as top-k sections store them; an odd count
    assert np.array_equal(unpack(pack_bits(ranks, bits), bits, 125, 7).astype(np.uint64), ranks.T)
    assert np.array_equal(unpack(pack_bits(ranks, bits), bits, 7, 125, by_sample=True).astype(np.uint64), ranks)


@pytest.mark.parametrize("bits", range(9, 17))
def test_split_indices_round_trip_at_every_width_and_lay_out_as_the_spec_says(bits: int) -> None:
    from lpq.format.codecs import SplitIndices, pack_bits

    rows, k = 13, 7  # an odd count: the high stream ends inside a byte for every width
    idx = np.random.default_rng(bits).integers(0, 1 << bits, (rows, k))
    codec = SplitIndices(bits, 1 << bits)
    data = codec.encode(idx)
    # Section 5.1: the (n, k) indices sample-major, low bytes first, then the high bits as one bit stream.
    flat = idx.reshape(-1)
    assert data == (flat & 255).astype(np.uint8).tobytes() + pack_bits(flat >> 8, bits - 8)
    assert len(data) == codec.size(rows, k)
    got = codec.decode(data, rows, k)
    assert got.dtype == np.int64 and np.array_equal(got, idx)
    with pytest.raises(LpqlError, match="num_classes"):
        SplitIndices(bits, int(idx.max())).decode(data, rows, k)


def test_writers_split_indices_where_the_high_bits_fill_whole_bytes() -> None:
    chosen = {c: (IndexCodec.for_classes(c).id, IndexCodec.for_classes(c).bits) for c in (200, 300, 1000, 1500, 21843)}
    assert chosen == {
        200: ("bitpack", 8),
        300: ("split", 9),
        1000: ("split", 10),
        1500: ("bitpack", 11),
        21843: ("bitpack", 15),
    }
    with pytest.raises(ValueError, match="9 to 16 bits"):
        IndexCodec(id="split", bits=8)


def crafted(path: Path, header_json: bytes, batches: list[tuple[int, bytes]] = ()) -> Path:  # type: ignore[assignment]
    """A file with valid framing and checksums around whatever header and batch payloads a test writes."""
    from lpq.format.layout import INDEX_ENTRY, PREAMBLE, footer, frame

    body = PREAMBLE.pack(b"\x89LPQL\r\n\x1a", 1, 1, 0)
    entries = [(b"HEAD", 0, len(body), len(header_json))]
    body += frame(b"HEAD", header_json)
    for bid, payload in batches:
        entries.append((b"BTCH", bid, len(body), len(payload)))
        body += frame(b"BTCH", payload)
    index = np.array(entries, dtype=INDEX_ENTRY)
    path.write_bytes(body + frame(b"INDX", np.uint32(len(entries)).tobytes() + index.tobytes()) + footer(len(body)))
    return path


def huge_zstd_section(declared: int) -> bytes:
    """A zstd frame whose header declares ``declared`` content bytes (single segment, 8-byte size) and holds none."""
    return b"\x28\xb5\x2f\xfd" + b"\xe0" + declared.to_bytes(8, "little") + b"\x01\x00\x00"


def over_limit_files(folder: Path) -> dict[str, Path]:

    from lpq.format.layout import BATCH_FIXED, SECTION, ZSTD

    many_images = make_header().model_dump(mode="json")
    many_images["images"]["count"] = 2**40
    many_images["relabel"]["batches_per_epoch"] = -(-(2**40) // many_images["relabel"]["batch_size"])
    wide = make_header(classes=100_000, images=65_535, batch_size=65_535, epochs=1, values="f32").model_dump(
        mode="json"
    )
    small = make_header(kept=[0])
    payload = BATCH_FIXED.pack(0, 0, 8, 0, 1.0, 0, 0, 0, 0) + SECTION.pack(ZSTD, 16) + huge_zstd_section(2**40)
    return {
        "images": crafted(folder / "images.lpql", json.dumps(many_images).encode()),
        "batch": crafted(folder / "batch.lpql", json.dumps(wide).encode()),
        "zstd": crafted(folder / "zstd.lpql", small.model_dump_json().encode(), [(0, payload)]),
    }


@pytest.mark.parametrize(
    "case,message",
    [
        ("images", "images.count 1,099,511,627,776 exceeds"),
        ("batch", "one batch decodes to 26,214,000,000 bytes"),
        ("zstd", "declares 1,099,511,627,776 bytes"),
    ],
)
def test_checksum_valid_files_asking_for_huge_allocations_are_refused_under_a_memory_limit(
    tmp_path: Path, case: str, message: str
) -> None:
    """Each file would make a naive reader allocate terabytes or 26 GB; under a 1 GiB address-space limit
    the reader must still answer with its one-line error, not a MemoryError or a killed process."""
    import resource
    import subprocess
    import sys

    path = over_limit_files(tmp_path)[case]
    assert path.stat().st_size < 2_000_000  # small files: the sizes are claims, not data

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))

    run = subprocess.run(
        [sys.executable, "-m", "lpq", "inspect", str(path), "--verify"],
        capture_output=True,
        text=True,
        preexec_fn=limit,
        check=False,
    )
    lines = run.stderr.strip().splitlines()
    assert run.returncode == 2 and len(lines) == 1 and "lpql-over-limit" in lines[0] and message in lines[0], run.stderr


@pytest.mark.parametrize(
    ("where", "value"),
    [
        (("augment", "mean"), [float("nan"), 0.5, 0.5]),
        (("augment", "mean"), [-0.5, 0.5, 0.5]),
        (("augment", "std"), [0.25, 0.0, 0.25]),
        (("augment", "std"), [0.25, -1.0, 0.25]),
        (("augment", "std"), [0.25, float("inf"), 0.25]),
        (("augment", "mix_alpha"), float("inf")),
        (("prune", "ratio"), float("inf")),
        (("prune", "ratio"), -2.0),
        (("quant", "ms_temperature"), float("nan")),
    ],
)
def test_crafted_header_numbers_are_refused_by_name(tmp_path: Path, where: tuple[str, str], value: object) -> None:
    """Numbers a checksum-valid crafted header may carry: NaN, infinity, zero or negative normalization."""
    head = json.loads(make_header(scheme="ms", k=3, values="f16").model_dump_json())
    head["augment"]["mean"], head["augment"]["std"] = [0.5] * 3, [0.25] * 3
    head[where[0]][where[1]] = value
    path = crafted(tmp_path / "c.lpql", json.dumps(head).encode())  # json writes NaN / Infinity as such
    with pytest.raises(LpqlError) as e, LpqlReader(path):
        pass
    assert e.value.ref == "lpql-bad-header"


def test_tail_ranks_follow_the_spec_up_to_the_largest_header() -> None:
    """Spec 4.1's ranks, against the float formula, and at 255 points of ImageNet-21K's 21,843 classes, where
    m**j (10^1100) is past any float: the first version of tail_ranks overflowed there, on a header it accepts."""
    from lpq.format.header import tail_ranks

    for rest, points in [(190, 4), (9, 4), (996, 2), (100_000, 5)]:
        m = rest - points + 1
        assert tail_ranks(rest, points) == [j - 1 + math.floor(m ** (j / (points - 1)) + 1e-9) for j in range(points)]
    ranks = tail_ranks(21_833, 255)
    assert ranks[0] == 0 and ranks[-1] == 21_832 and bool(np.all(np.diff(ranks) > 0))
