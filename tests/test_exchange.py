"""Labels out to and in from the SRe2L / LPLD / LPQLD layout, through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from lpq.cli.app import app
from lpq.configs.relabel import RelabelConfig
from lpq.format import LpqlError, LpqlReader
from lpq.format.layout import BTCH, CALB, HEAD
from lpq.format.rng import mix_order
from lpq.method.targets import record_targets
from lpq.stages.relabel import relabel

runner = CliRunner()


def cli(*args: object) -> dict:
    result = runner.invoke(app, [*map(str, args), "--json", "-q"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture(scope="module", params=["full", "mr3"])
def labels(request: pytest.FixtureRequest, digits_teacher: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("x") / f"{request.param}.lpql"
    top_k = 3 if request.param == "mr3" else None
    relabel(
        RelabelConfig(
            images="digits",
            teacher=digits_teacher,
            output=out,
            epochs=3,
            batch_size=100,
            ratio=2,
            values="f16",
            top_k=top_k,
        )
    )
    return out


def batches(path: Path) -> list:
    with LpqlReader(path) as r:
        hw = np.tile(np.array([r.header.images.height, r.header.images.width]), (r.header.images.count, 1))
        out = []
        for bid in r.batch_ids.tolist():
            rec = r.read(bid)
            idx = r.image_indices(rec)
            aug = r.augment(rec, hw[idx])
            partner = (
                rec.stored.partner if rec.stored else mix_order(r.header.relabel.seed, rec.epoch, rec.batch, rec.size)
            )
            out.append((rec, idx, aug.table(), partner, record_targets(rec, r.header, 4.0)))
        return out


def test_export_writes_the_authors_lists_and_import_gives_back_the_same_labels_and_crops(
    labels: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "fkd"
    exported = cli("export", labels, "--to", "sre2l", "-o", folder)
    files = sorted(folder.glob("batch_*.tar"))
    assert exported["batches"] == len(files) and (folder / "sampler_indices_batch.json").exists()
    coords, flips, mix_index, lam, box, logits, *rest = torch.load(files[0], weights_only=True)
    assert coords.dtype == torch.float16 and coords.shape == (100, 4) and flips.dtype == torch.bool
    assert mix_index.dtype == torch.uint8 and isinstance(lam, float) and [v.dtype for v in box] == [torch.uint8] * 4
    assert logits.dtype == torch.float16 and (logits.shape[1] == 10 if not rest else rest[0].dtype == torch.int16)
    result = cli("import", folder, "--images", "digits", "-o", tmp_path / "back.lpql")
    assert result["batches"] == exported["batches"] and result["smaller_by"] > 1
    with LpqlReader(tmp_path / "back.lpql") as r:
        assert r.header.augment.stored and r.minor >= 1 and r.header.quant.k == (10 if not rest else 3)
    for (a, ia, ta, pa, ya), (b, ib, tb, pb, yb) in zip(batches(labels), batches(tmp_path / "back.lpql"), strict=True):
        assert np.array_equal(ia, ib) and np.array_equal(ta, tb) and np.array_equal(pa, pb)  # images, crops, partners
        assert b.stored is not None and a.mix_box == b.mix_box and torch.equal(ya, yb)  # the same dense targets


def test_a_student_trains_on_imported_labels(labels: Path, tmp_path: Path) -> None:
    cli("export", labels, "-o", tmp_path / "fkd")
    cli("import", tmp_path / "fkd", "--images", "digits", "-o", tmp_path / "back.lpql")
    run = cli("train", "digits", tmp_path / "back.lpql", "--epochs", 2, "--evals", 1, "-o", tmp_path / "run")
    assert run["epochs"] == 2 and run["top1"] > 10


def test_a_file_that_needs_unpickling_is_refused(labels: Path, tmp_path: Path) -> None:
    folder = tmp_path / "fkd"
    cli("export", labels, "-o", folder)
    torch.save([LpqlError("x", "y"), 1, 2, 3, 4, 5], folder / "batch_0.tar")  # code would run if unpickled freely
    result = runner.invoke(app, ["import", str(folder), "--images", "digits", "-o", str(tmp_path / "x.lpql")])
    assert result.exit_code == 2 and "import-unsafe-or-corrupt" in result.stderr and "weights_only" in result.stderr
    assert not (tmp_path / "x.lpql").exists()
    coords, flips, mix_index, lam, box, logits, *rest = torch.load(folder / "batch_1.tar", weights_only=True)
    torch.save([coords, flips, mix_index, lam, box, logits.flatten(), *rest], folder / "batch_0.tar")  # labels 1-D
    result = runner.invoke(app, ["import", str(folder), "--images", "digits", "-o", str(tmp_path / "x.lpql")])
    assert result.exit_code == 2 and "import-bad-batch" in result.stderr and "labels of shape" in result.stderr
    (folder / "sampler_indices_batch.json").unlink()
    result = runner.invoke(app, ["import", str(folder), "--images", "digits", "-o", str(tmp_path / "x.lpql")])
    assert result.exit_code == 2 and "import-bad-folder" in result.stderr


def test_export_refuses_what_the_layout_cannot_hold(digits_teacher: Path, tmp_path: Path) -> None:
    big = tmp_path / "big.lpql"
    relabel(RelabelConfig(images="digits", teacher=digits_teacher, output=big, epochs=1, batch_size=300))
    result = runner.invoke(app, ["export", str(big), "-o", str(tmp_path / "fkd")])
    assert result.exit_code == 2 and "export-unsupported" in result.stderr and "uint8" in result.stderr


def test_a_reader_of_version_1_0_refuses_stored_augmentation_cleanly(
    labels: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cli("export", labels, "-o", tmp_path / "fkd")
    cli("import", tmp_path / "fkd", "--images", "digits", "-o", tmp_path / "back.lpql")
    monkeypatch.setattr("lpq.format.reader._KNOWN", {HEAD, BTCH, CALB})  # what 1.0 readers know
    with pytest.raises(LpqlError) as e:
        LpqlReader(tmp_path / "back.lpql")
    assert e.value.ref == "lpql-unknown-chunk" and "BTCS" in str(e.value)


def test_import_without_the_crop_size_refuses_instead_of_clipping_boxes(labels: Path, tmp_path: Path) -> None:
    """Their layout does not record the crop size its CutMix boxes are in: without lpq's export note, import needs
    --input-size, and a size the boxes do not fit in is refused, never clipped."""
    folder = tmp_path / "theirs"
    cli("export", labels, "--to", "sre2l", "-o", folder)
    (folder / "lpq_export.json").unlink()  # as a folder their own code wrote
    args = ["import", str(folder), "--images", "digits", "-o"]
    result = runner.invoke(app, [*args, str(tmp_path / "a.lpql")])
    assert result.exit_code == 2 and "import-needs-size" in result.stderr and "--input-size" in result.stderr
    result = runner.invoke(app, [*args, str(tmp_path / "b.lpql"), "--input-size", "4"])
    assert result.exit_code == 2 and "import-box-outside" in result.stderr and not (tmp_path / "b.lpql").exists()
    cli("import", folder, "--images", "digits", "--input-size", "16", "-o", tmp_path / "c.lpql")


def test_import_keeps_their_precision_and_says_what_it_inferred_rounded_or_skipped(
    labels: Path, tmp_path: Path
) -> None:
    """Float32 logits (their --no-fp16 runs) stay float32 unless --values says otherwise, which is then said; the
    epochs and ratio a folder does not record are marked inferred; a batch file the map does not list is named."""
    folder = tmp_path / "theirs"
    cli("export", labels, "-o", folder)
    (folder / "lpq_export.json").unlink()  # as their own code writes it: no epochs, no crop size
    n = len(json.loads((folder / "sampler_indices_batch.json").read_text()))
    exact = {}
    for i in range(n):
        items = torch.load(folder / f"batch_{i}.tar", weights_only=True)
        items[5] = items[5].float() + torch.rand_like(items[5].float()) * 1e-3  # beyond float16's precision
        exact[i] = items[5]
        torch.save(items, folder / f"batch_{i}.tar")
    torch.save(torch.load(folder / "batch_0.tar", weights_only=True), folder / f"batch_{n}.tar")  # not in the map
    args = ["import", str(folder), "--images", "digits", "--input-size", "16", "--json", "-q", "-o"]
    kept = runner.invoke(app, [*args, str(tmp_path / "f32.lpql")])
    doc = json.loads(kept.stdout)
    assert doc["values"] == "f32" and doc["inferred"] == ["epochs"] and doc["epochs"] == 2 and "zstd" in doc["why_size"]
    assert "inferred from the batch count" in kept.stderr and f"batch_{n}.tar" in kept.stderr
    assert "rounded" not in kept.stderr and "drop_last" in kept.stderr
    with LpqlReader(tmp_path / "f32.lpql") as r:
        for i, bid in enumerate(r.batch_ids.tolist()):
            stored = torch.from_numpy(r.read(bid).values)
            theirs = exact[i] if r.header.quant.scheme == "none" else exact[i].sort(1, descending=True).values
            assert torch.equal(stored, theirs)
    rounded = runner.invoke(app, [*args, str(tmp_path / "f16.lpql"), "--values", "f16", "--epochs", "3"])
    doc = json.loads(rounded.stdout)  # 1,437 training digits in batches of 100: 15 per epoch
    assert doc["values"] == "f16" and doc["inferred"] == [] and doc["epochs"] == 3 and doc["ratio"] == 3 * 15 / n
    assert "float32 logits are stored as f16" in rounded.stderr and "inferred" not in rounded.stderr


def test_import_refuses_a_wrapped_mix_index_and_an_empty_map(tmp_path: Path) -> None:
    folder = tmp_path / "theirs"
    folder.mkdir()
    b = 300  # their uint8 mix index holds 256 partners: sample 256 "mixed with" 0 is really 256
    mix = torch.arange(b).roll(1).to(torch.uint8)
    box = [torch.tensor(v, dtype=torch.uint8) for v in (0, 0, 8, 8)]
    items = [torch.rand(b, 4).half() * 0.5, torch.zeros(b, dtype=torch.bool), mix, 0.75, box, torch.randn(b, 10).half()]
    torch.save(items, folder / "batch_0.tar")
    (folder / "sampler_indices_batch.json").write_text(json.dumps({"0": list(range(b))}))
    args = ["import", str(folder), "--images", "digits", "--input-size", "16", "-o", str(tmp_path / "x.lpql")]
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and "import-wrapped-mix" in result.stderr and "256" in result.stderr
    (folder / "sampler_indices_batch.json").write_text("{}")
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and "lists no batches" in result.stderr


def test_export_says_the_crop_size_and_refuses_batches_their_reader_cannot_tell_apart(tmp_path: Path) -> None:
    from lpql_factory import make_header, make_records, write_file

    h = make_header(images=10, batch_size=10, epochs=100, scheme="none", values="f16")
    same_start = write_file(tmp_path / "ipc1.lpql", h, make_records(h))  # 100 shuffles of 10 images: starts repeat
    result = runner.invoke(app, ["export", str(same_start), "-o", str(tmp_path / "a")])
    assert result.exit_code == 2 and "export-ambiguous" in result.stderr and "first three" in result.stderr
    assert not (tmp_path / "a").exists()
    h = make_header(images=40, batch_size=8, epochs=2, scheme="none", values="f16")
    fine = write_file(tmp_path / "ok.lpql", h, make_records(h))
    result = runner.invoke(app, ["export", str(fine), "-o", str(tmp_path / "b"), "--json"])
    size = h.augment.input_size
    assert result.exit_code == 0 and json.loads(result.stdout)["input_size"] == size
    assert f"refer to {size} px inputs" in result.stderr and "224 for ImageNet" in result.stderr
