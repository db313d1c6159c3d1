"""Stages 3-5: relabel, prune, quantize, and the replay shared with training."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import stderr_of, torchrun
from lpql_factory import make_header, make_records, write_file
from pydantic import ValidationError
from typer.testing import CliRunner

from lpq.artifacts.teacher import load_teacher, save_teacher, weights_sha256
from lpq.cli.app import app
from lpq.configs.prune import PruneConfig
from lpq.configs.quantize import QuantizeConfig
from lpq.configs.relabel import RelabelConfig
from lpq.data import load_split
from lpq.errors import LpqError
from lpq.format import LpqlReader, partial_path
from lpq.format.coverage import coverage
from lpq.method.replay import render, stored_plan
from lpq.runtime import Precision
from lpq.stages.prune import PruneResult, prune_file
from lpq.stages.quantize import QuantizeResult, quantize_file
from lpq.stages.relabel import relabel

runner = CliRunner()


def prune(src: Path, ratio: float, out: Path, **kw: object) -> PruneResult:
    return prune_file(PruneConfig(labels=src, ratio=ratio, output=out, **kw))


def quantize(src: Path, out: Path, scheme: str, k: int | None, values: str) -> QuantizeResult:
    return quantize_file(QuantizeConfig(labels=src, output=out, scheme=scheme, top_k=k, values=values))


def decoded(path: Path) -> list[tuple[int, np.ndarray, np.ndarray | None]]:
    with LpqlReader(path) as r:
        return [(int(b), r.read(int(b)).values, r.read(int(b)).indices) for b in r.batch_ids]


def assert_same_labels(a: Path, b: Path) -> None:
    da, db = decoded(a), decoded(b)
    assert [x[0] for x in da] == [x[0] for x in db]
    for (_, va, ia), (_, vb, ib) in zip(da, db):
        assert np.array_equal(va, vb) and (ia is None or np.array_equal(ia, ib))


@pytest.fixture(scope="module")
def full_labels(digits_teacher: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("labels") / "full.lpql"
    relabel(RelabelConfig(images="digits", teacher=digits_teacher, output=out, epochs=4, batch_size=64, values="f32"))
    return out


@pytest.mark.parametrize("mix", ["cutmix", "mixup", "none"])
def test_replayed_batch_gives_the_stored_logits(digits_teacher: Path, tmp_path: Path, mix: str) -> None:
    out = tmp_path / "l.lpql"
    relabel(
        RelabelConfig(
            images="digits",
            teacher=digits_teacher,
            output=out,
            epochs=2,
            batch_size=50,
            values="f32",
            mix=mix,
            ratio=4,
            strategy="random",
        )
    )
    teacher = load_teacher(digits_teacher)
    images = load_split("digits", "train")
    hw = images.sizes()
    with LpqlReader(out) as r:
        assert r.header.augment.mix == mix
        for bid in r.batch_ids:
            rec = r.read(int(bid))
            plan = stored_plan(r, rec, hw)
            x = render(plan, images, r.header)
            with torch.no_grad():
                logits = teacher.model(teacher.normalize(x)).numpy()
            assert np.abs(logits - rec.values).max() <= 1e-4
            if mix == "cutmix":
                assert rec.mix_box[2] > rec.mix_box[0] or rec.mix_lambda == 1.0


def test_relabel_records_settings_calibration_and_fingerprint(full_labels: Path, digits_teacher: Path) -> None:
    with LpqlReader(full_labels) as r:
        h = r.header
        assert h.images.fingerprint == load_split("digits", "train").fingerprint()
        assert h.teacher.weights_sha256 == load_teacher(digits_teacher).meta.weights_sha256
        assert h.relabel.total_batches == len(r.batch_ids) == 4 * 23
        c = r.calibration
        assert c is not None and c.overall.samples == 4 * 1437 and sum(p.samples for p in c.per_class) == 4 * 1437
        assert c.overall.margin > 0 and 0 < c.overall.entropy < np.log(10)


def test_relabel_with_ratio_and_topk_equals_prune_then_quantize(
    digits_teacher: Path, full_labels: Path, tmp_path: Path
) -> None:
    direct = tmp_path / "direct.lpql"
    relabel(
        RelabelConfig(
            images="digits",
            teacher=digits_teacher,
            output=direct,
            epochs=4,
            batch_size=64,
            ratio=4,
            strategy="first",
            scheme="mr",
            top_k=3,
            values="f32",
        )
    )
    pruned = prune(full_labels, 4, tmp_path / "p.lpql", strategy="first").output
    staged = quantize(pruned, tmp_path / "q.lpql", "mr", 3, "f32").output
    assert_same_labels(direct, staged)
    with LpqlReader(direct) as r:
        assert r.header.prune.kept == list(range(23))


def test_prune_composes_and_copies_chunks(full_labels: Path, tmp_path: Path) -> None:
    before = full_labels.read_bytes()
    a = prune(full_labels, 4, tmp_path / "a.lpql", seed=1)
    b = prune(a.output, 2, tmp_path / "b.lpql", seed=2)
    direct = round(92 / 8)
    assert (a.batches_after, b.batches_after, b.ratio) == (23, direct, 8.0)
    with LpqlReader(b.output) as rb, LpqlReader(full_labels) as rf:
        assert set(rb.batch_ids.tolist()) <= set(rf.batch_ids.tolist())
        for bid in rb.batch_ids:
            assert rb.payload(int(bid)) == rf.payload(int(bid))
    assert full_labels.read_bytes() == before


def test_prune_refuses_bad_ratios(full_labels: Path, tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="greater than or equal to 1"):
        PruneConfig(labels=full_labels, ratio=0.5, output=tmp_path / "x.lpql")
    with pytest.raises(LpqError) as e:
        prune(full_labels, 500, tmp_path / "x.lpql")
    assert e.value.ref == "bad-ratio" and not (tmp_path / "x.lpql").exists()


def test_quantize_down_works_and_up_is_refused(full_labels: Path, tmp_path: Path) -> None:
    mr5 = quantize(full_labels, tmp_path / "mr5.lpql", "mr", 5, "f32").output
    mr2 = quantize(mr5, tmp_path / "mr2.lpql", "mr", 2, "i8").output
    with LpqlReader(full_labels) as rf, LpqlReader(mr2) as r2:
        full = rf.read(0).values
        rec = r2.read(0)
        order = np.argsort(-full, axis=1)[:, :2]
        assert np.array_equal(rec.indices, order)
        top = np.take_along_axis(full, order, axis=1)
        assert np.allclose(rec.values, top - top[:, :1], atol=0.05)
    for args, ref in [
        ((mr5, "mr", 8, "f16"), "quantize-lost"),
        ((mr5, "ms", 2, "f16"), "quantize-lost"),
        ((full_labels, "mr", 11, "f16"), "bad-top-k"),
    ]:
        with pytest.raises(LpqError) as e:
            quantize(args[0], tmp_path / "bad.lpql", *args[1:])
        assert e.value.ref == ref
    with pytest.raises(ValidationError):
        QuantizeConfig(labels=full_labels, output=tmp_path / "bad.lpql", top_k=0)


@pytest.mark.parametrize(
    ("scheme", "name", "columns"),
    [("tail", "tail-3+4", 7), ("sampled", "sampled-3", 3), ("basis", "basis-3+4", 7)],
    ids=["tail", "sampled", "basis"],
)
def test_new_codes_from_relabel_and_quantize_agree_and_train(
    digits_teacher: Path, full_labels: Path, tmp_path: Path, scheme: str, name: str, columns: int
) -> None:
    """Schemes tail, sampled and basis end to end: relabel writes what quantize makes of the full labels (sampled:
    the same draws, seeded by batch; basis: the same basis, fitted on the same seeded batches), training and the
    dataset read them, inspect names them, export and another k refuse what the layout or the stored code cannot
    hold."""
    direct = tmp_path / "direct.lpql"
    relabel(
        RelabelConfig(
            images="digits", teacher=digits_teacher, output=direct, epochs=4, batch_size=64, scheme=scheme, top_k=3
        )
    )
    staged = tmp_path / "staged.lpql"
    args = ["quantize", str(full_labels), "--scheme", scheme, "--top-k", "3", "--values", "f16", "-o", str(staged)]
    assert runner.invoke(app, [*args, "-q"]).exit_code == 0
    assert_same_labels(direct, staged)
    with LpqlReader(staged) as r:
        assert r.header.quant.name == name and r.read(0).values.shape == (64, columns)
    shown = runner.invoke(app, ["inspect", str(staged)])
    assert name in shown.stdout
    trained = runner.invoke(app, ["train", "digits", str(staged), "--epochs", "1", "-q", "-o", str(tmp_path / "r")])
    assert trained.exit_code == 0, trained.output
    pruned = tmp_path / "pruned.lpql"
    assert runner.invoke(app, ["prune", str(staged), "--ratio", "2", "-o", str(pruned), "-q"]).exit_code == 0
    with LpqlReader(staged) as a, LpqlReader(pruned) as b:  # a basis travels with its labels
        assert (a.basis is None) == (b.basis is None) == (scheme != "basis")
        assert a.basis is None or np.array_equal(a.basis.weights, b.basis.weights)
    for line, says in [
        (["export", str(staged), "-o", str(tmp_path / "ex")], "export-unsupported"),
        (["quantize", str(staged), "--scheme", scheme, "--top-k", "2", "-o", str(tmp_path / "q")], "quantize-lost"),
        (["quantize", str(full_labels), "--scheme", "tail", "--top-k", "8", "-o", str(tmp_path / "q")], "bad-top-k"),
    ]:
        refused = runner.invoke(app, line)
        assert refused.exit_code == 2 and says in refused.stderr, refused.output
    assert (
        "<none|mr|ms|tail|sampled|basis>" in runner.invoke(app, ["quantize", "--help"], env={"COLUMNS": "200"}).stdout
    )


def test_cli_refuses_output_equal_to_input_and_leaves_it(full_labels: Path) -> None:
    before = full_labels.read_bytes()
    for cmd in (
        ["prune", str(full_labels), "--ratio", "2", "-o", str(full_labels)],
        ["quantize", str(full_labels), "--top-k", "3", "-o", str(full_labels)],
    ):
        result = runner.invoke(app, cmd)
        assert result.exit_code == 2 and "output-is-input" in result.stderr
    assert full_labels.read_bytes() == before


def test_relabel_refuses_teacher_of_other_classes(digits_teacher: Path, tmp_path: Path) -> None:
    from PIL import Image

    for cls in ("cat", "dog"):
        (tmp_path / "imgs" / cls).mkdir(parents=True)
        Image.new("RGB", (16, 16)).save(tmp_path / "imgs" / cls / "0.png")
    result = runner.invoke(
        app, ["relabel", str(tmp_path / "imgs"), "--teacher", str(digits_teacher), "-o", str(tmp_path / "x.lpql")]
    )
    assert result.exit_code == 2 and "class-mismatch" in result.stderr


def cli_env(threads: int = 1) -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONUNBUFFERED": "1"}


@pytest.mark.slow  # about 20 s: run by benchmarks/slow_tests.py
def test_killed_relabel_resumes_to_the_same_file(digits_teacher: Path, tmp_path: Path) -> None:
    args = [
        sys.executable,
        "-m",
        "lpq",
        "relabel",
        "digits",
        "--teacher",
        str(digits_teacher),
        "--epochs",
        "6",
        "--batch-size",
        "64",
        "--top-k",
        "4",
        "--values",
        "i8",
        "-q",
    ]
    whole = tmp_path / "whole.lpql"
    subprocess.run([*args, "-o", str(whole)], check=True, env=cli_env(), capture_output=True)
    out = tmp_path / "killed.lpql"
    proc = subprocess.Popen(
        [*args, "-o", str(out)], env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    part = partial_path(out)
    deadline = time.monotonic() + 120
    while (not part.exists() or part.stat().st_size < whole.stat().st_size // 3) and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert part.exists() and not out.exists()
    again = subprocess.run([*args, "-o", str(out)], env=cli_env(), capture_output=True, text=True)
    assert again.returncode == 2 and "--resume" in again.stderr
    subprocess.run([*args, "-o", str(out), "--resume"], check=True, env=cli_env(), capture_output=True)
    assert_same_labels(whole, out)
    assert not part.exists()


def test_torchrun_two_processes_equal_one(digits_teacher: Path, tmp_path: Path) -> None:
    common = [
        "relabel",
        "digits",
        "--teacher",
        str(digits_teacher),
        "--epochs",
        "2",
        "--batch-size",
        "64",
        "--top-k",
        "3",
        "--values",
        "f16",
        "--ratio",
        "2",
        "-q",
        "--device",
        "cpu",
    ]
    single = tmp_path / "single.lpql"
    subprocess.run(
        [sys.executable, "-m", "lpq", *common, "-o", str(single)], check=True, env=cli_env(), capture_output=True
    )
    multi = tmp_path / "multi.lpql"
    run = subprocess.run(
        torchrun(
            *common,
            "-o",
            str(multi),
        ),
        env=cli_env(),
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, stderr_of(run)
    assert_same_labels(single, multi)
    assert multi.read_bytes() == single.read_bytes()  # calibration sums too: fixed point, order-free
    assert sorted(p.name for p in tmp_path.iterdir()) == [  # parts merged and gone; one log beside each file
        "multi.lpql",
        "multi.lpql.log.txt",
        "single.lpql",
        "single.lpql.log.txt",
    ]


@pytest.mark.slow  # about 60 s of CPU (eight processes): run by benchmarks/slow_tests.py
@pytest.mark.parametrize("code", [["--budget", "x20"], ["--scheme", "basis", "--top-k", "3", "--rank", "2"]])
def test_a_budget_and_a_basis_under_torchrun_are_one_processs(
    digits_teacher: Path, tmp_path: Path, code: list[str]
) -> None:
    """relabel --budget under torchrun: rank 0 chooses (the others take its choice); scheme basis: rank 0's basis,
    sent to the others. Either way the file's labels equal one process's."""
    common = ["relabel", "digits", "--teacher", str(digits_teacher), "--epochs", "10", *code, "-q", "--device", "cpu"]
    single = tmp_path / "single.lpql"
    subprocess.run([sys.executable, "-m", "lpq", *common, "-o", str(single)], check=True, env=cli_env())
    multi = tmp_path / "multi.lpql"
    run = subprocess.run(torchrun(*common, "-o", str(multi)), env=cli_env(), capture_output=True, text=True)
    assert run.returncode == 0, stderr_of(run)
    with LpqlReader(single) as a, LpqlReader(multi) as b:
        assert a.header.quant == b.header.quant and a.header.prune == b.header.prune
        assert (a.basis is None) == (b.basis is None) == (code[0] == "--budget")
        assert a.basis is None or a.basis.payload() == b.basis.payload()
    assert_same_labels(single, multi)


def direct_mass(path: Path, k: int, temperature: float) -> float:
    """Mean softmax mass inside the top k, computed from a full-label file's logits independently."""
    masses = []
    with LpqlReader(path) as r:
        for bid in r.batch_ids:
            p = torch.softmax(torch.from_numpy(r.read(int(bid)).values).double() / temperature, dim=1)
            masses.append(p.sort(dim=1, descending=True).values[:, :k].sum(1))
    return float(torch.cat(masses).mean())


def test_calibration_records_the_kept_mass_ladder_from_full_logits(full_labels: Path) -> None:
    with LpqlReader(full_labels) as r:
        c = r.calibration
    assert c is not None and c.topk == 10 and sorted(map(int, c.overall.kept_mass)) == [1, 2, 5, 10]
    j = c.temperatures.index(1.0)
    for k in (1, 2, 5):
        assert c.overall.kept_mass[str(k)][j] == pytest.approx(direct_mass(full_labels, k, 1.0), abs=1e-6)
    assert c.overall.kept_mass["10"] == pytest.approx([1.0] * len(c.temperatures))
    assert c.overall.kept_mass["2"][c.temperatures.index(20.0)] < c.overall.kept_mass["2"][j]  # softer at T=20
    assert all(len(pc.kept_mass) == 4 for pc in c.per_class)


def test_quantize_marks_its_k_and_keeps_full_logit_masses(full_labels: Path, tmp_path: Path) -> None:
    mr3 = quantize(full_labels, tmp_path / "mr3.lpql", "mr", 3, "i8").output  # k=3 is not on the ladder
    with LpqlReader(mr3) as r:
        c = r.calibration
    assert c is not None and c.topk == 3
    assert c.overall.topk_mass["1"] == pytest.approx(direct_mass(full_labels, 3, 1.0), abs=1e-6)  # measured, not 1.0
    assert all(pc.topk_mass == {} for pc in c.per_class)  # no image classes here: unknown, never 1.0
    assert c.overall.kept_mass["5"][c.temperatures.index(1.0)] < 1.0  # the table is still the full logits'
    mr2 = quantize(mr3, tmp_path / "mr2.lpql", "mr", 2, "i8").output  # from quantized labels: the table knows k=2
    with LpqlReader(mr2) as r:
        assert r.calibration is not None and r.calibration.overall.topk_mass["1"] == pytest.approx(
            direct_mass(full_labels, 2, 1.0), abs=1e-6
        )
    mr5 = quantize(full_labels, tmp_path / "mr5.lpql", "mr", 5, "i8").output
    mr4 = quantize(mr5, tmp_path / "mr4.lpql", "mr", 4, "i8").output  # quantized source, k off the ladder
    with LpqlReader(mr4) as r:
        assert r.calibration is not None and r.calibration.overall.topk_mass == {}
    shown = runner.invoke(app, ["inspect", str(mr4)])
    assert "top-4 mass by T" in shown.output and "unknown" in shown.output and "(this file)" not in shown.output
    shown = runner.invoke(app, ["inspect", str(mr5)])
    assert "5 (this file)" in shown.output and "schedule start" in shown.output


def test_top_k_auto_keeps_the_asked_mass_with_the_smallest_k(full_labels: Path, tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        [
            "quantize",
            str(full_labels),
            "--top-k",
            "auto",
            "--keep-mass",
            "0.99",
            "--at-temp",
            "4",
            "-o",
            str(tmp_path / "auto.lpql"),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    k = doc["k"]
    assert direct_mass(full_labels, k, 4.0) >= 0.99 > direct_mass(full_labels, k - 1, 4.0)
    assert doc["kept_mass"] == pytest.approx(direct_mass(full_labels, k, 4.0), abs=1e-6) and doc["at_temp"] == 4.0
    with LpqlReader(tmp_path / "auto.lpql") as r:
        assert r.header.quant.k == k


def test_top_k_auto_measures_mass_where_dkr_spends_its_time(full_labels: Path, tmp_path: Path) -> None:
    """Without --at-temp the mass is measured at the middle epoch of the labels' DKR schedule: 20 * 0.7^5 =
    3.361 for the authors' step schedule (epoch 150 of 300), where the same --keep-mass needs a larger k than at
    T=1 (issue 37, item 4)."""
    out = tmp_path / "auto.lpql"
    args = ["quantize", str(full_labels), "--top-k", "auto", "--keep-mass", "0.9", "-o", str(out), "--json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["at_temp"] == pytest.approx(20 * 0.7**5, abs=1e-4)
    k = doc["k"]
    assert direct_mass(full_labels, k, doc["at_temp"]) >= 0.9 > direct_mass(full_labels, k - 1, doc["at_temp"])
    at_one = json.loads(
        runner.invoke(app, [*args[:-3], "--at-temp", "1", "-o", str(tmp_path / "one.lpql"), "--json"]).stdout
    )
    assert at_one["k"] < k


def test_relabel_under_bf16_autocast_agrees_with_float32(digits_teacher: Path, tmp_path: Path) -> None:
    """Mixed precision changes logits a little and the argmax almost never; the header records the precision."""
    runs = {}
    for amp in ("none", "bf16"):
        out = tmp_path / f"{amp}.lpql"
        relabel(
            RelabelConfig(
                images="digits", teacher=digits_teacher, output=out, epochs=2, values="f32", amp=amp, device="cpu"
            )
        )
        runs[amp] = decoded(out)
        with LpqlReader(out) as r:
            assert r.header.teacher.precision == {"none": "float32", "bf16": "bf16"}[amp]
    full = np.concatenate([v for _, v, _ in runs["none"]])
    half = np.concatenate([v for _, v, _ in runs["bf16"]])
    agree = float((full.argmax(1) == half.argmax(1)).mean())
    assert agree >= 0.99 and 0 < np.abs(full - half).max() < 0.5 * np.abs(full).max()


def test_auto_precision_relabels_in_float16_on_cuda_and_trains_in_bfloat16() -> None:
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert Precision.choose("auto", cuda, inference=True).dtype == torch.float16
    assert Precision.choose("auto", cpu, inference=True).dtype is None and Precision.choose("auto", cpu).dtype is None


def test_logits_that_overflow_float16_are_an_error_not_a_label(digits_teacher: Path, tmp_path: Path) -> None:
    teacher = load_teacher(digits_teacher)
    head = [m for m in teacher.model.modules() if isinstance(m, torch.nn.Linear)][-1]
    with torch.no_grad():
        head.weight.mul_(1e6)  # logits far beyond float16's 65504
    teacher.meta = teacher.meta.model_copy(update={"weights_sha256": weights_sha256(teacher.model)})
    loud = save_teacher(tmp_path / "loud.lpqt", teacher)
    out = tmp_path / "l.lpql"
    result = runner.invoke(
        app, ["relabel", "digits", "--teacher", str(loud), "--epochs", "1", "--amp", "fp16", "-o", str(out)]
    )
    assert result.exit_code == 2 and "relabel-overflow" in result.stderr and "--amp bf16" in result.stderr
    assert not out.exists()


def test_top_k_means_mr_in_the_library_as_on_the_command_line(digits_teacher: Path) -> None:
    cfg = RelabelConfig(images="digits", teacher=digits_teacher, top_k=3)
    assert (
        cfg.scheme == "mr"
        and RelabelConfig(images="digits", teacher=digits_teacher, top_k=3, scheme="ms").scheme == "ms"
    )


def test_prune_covers_every_image_by_default_and_inspect_reports_it(tmp_path: Path) -> None:
    """A Tiny-ImageNet-shaped file (2,000 images, batch 64, 50 epochs) pruned x40: random batches leave images
    unlabelled; the default labels every image once or twice, and inspect --json shows it."""
    from lpq.format.rng import epoch_order

    header = make_header(classes=20, images=2000, batch_size=64, epochs=50, scheme="mr", k=2, values="i8")
    src = write_file(tmp_path / "tiny.lpql", header, make_records(header))
    out = runner.invoke(app, ["prune", str(src), "--ratio", "40", "-o", str(tmp_path / "x40.lpql"), "--json"])
    assert out.exit_code == 0, out.output
    assert "never labelled" not in out.stderr
    doc = json.loads(runner.invoke(app, ["inspect", str(tmp_path / "x40.lpql"), "--json"]).stdout)
    kept = doc["header"]["prune"]["kept"]
    counts = np.zeros(2000, int)  # recounted from the spec's epoch orders, not through lpq's coverage code
    for b in kept:
        epoch, batch = divmod(b, 32)
        counts[epoch_order(7, epoch, 2000)[batch * 64 : (batch + 1) * 64]] += 1
    assert len(kept) == 40 and counts.min() == 1 and counts.max() == 2
    cov = doc["coverage"]
    assert (cov["never"], cov["min_views"], cov["max_views"]) == (0, 1, 2)
    assert (cov["once"], cov["twice_or_more"]) == ((counts == 1).sum(), (counts == 2).sum())
    assert doc["header"]["prune"]["strategy"] == "cover"

    out = runner.invoke(
        app, ["prune", str(src), "--ratio", "40", "--strategy", "random", "-o", str(tmp_path / "r.lpql"), "--json"]
    )
    never = json.loads(out.stdout)["coverage"]["never"]
    assert out.exit_code == 0 and never > 400  # about 28% of the images
    assert f"{never} of 2000 images are never labelled" in out.stderr


def test_cover_fills_from_a_pool_without_whole_epochs(tmp_path: Path) -> None:
    """Pruning a randomly pruned file has no whole epoch to take: the greedy fill still labels every image that
    the pool holds (random choice of the same count leaves dozens out)."""
    header = make_header(classes=20, images=2000, batch_size=64, epochs=50, scheme="mr", k=2, values="i8")
    src = write_file(tmp_path / "tiny.lpql", header, make_records(header))
    rand = prune(src, 4, tmp_path / "r.lpql", strategy="random").output
    with LpqlReader(prune(rand, 4, tmp_path / "c.lpql").output) as r:
        cov = coverage(r)
    assert cov.never == 0 and cov.mean_views == pytest.approx(100 * 64 / 2000)


def test_quantize_refuses_a_top_k_for_full_labels(tmp_path: Path) -> None:
    header = make_header(classes=12, images=10, batch_size=5, epochs=1, values="f32")
    src = write_file(tmp_path / "full.lpql", header, make_records(header))
    out = tmp_path / "q.lpql"
    result = runner.invoke(app, ["quantize", str(src), "--scheme", "none", "--top-k", "5", "-o", str(out)])
    assert result.exit_code == 2 and "drop --top-k 5" in result.stderr and not out.exists()


def test_two_writers_of_one_output_never_leave_a_corrupt_file(tmp_path: Path) -> None:
    """Two `lpq quantize -o out.lpql` at once: whichever finishes first names the file, the other is refused in
    one line (busy, or the file appeared), and the file verifies."""
    header = make_header(classes=50, images=400, batch_size=20, epochs=20, values="f32")
    src = write_file(tmp_path / "full.lpql", header, make_records(header))
    out = tmp_path / "out.lpql"
    cmd = [sys.executable, "-m", "lpq", "quantize", str(src), "--top-k", "5", "--values", "i8", "-o", str(out)]
    runs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    done = [(r.wait(timeout=120), r.stderr.read()) for r in runs]
    codes = sorted(code for code, _ in done)
    assert codes == [0, 2], done
    refused = next(err for code, err in done if code == 2)
    assert len(refused.strip().splitlines()) == 1 and ("output-busy" in refused or "output-exists" in refused)
    check = subprocess.run([sys.executable, "-m", "lpq", "inspect", "--verify", str(out)], capture_output=True)
    assert check.returncode == 0 and not list(tmp_path.glob("*.partial"))
