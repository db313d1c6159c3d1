"""lpq quantize --budget xN: the code and k chosen by their distance from the full targets (lpq.method.fidelity)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from lpql_factory import make_header, make_records, write_file
from typer.testing import CliRunner

from lpq.cli.app import app
from lpq.format import LpqlReader, Quant
from lpq.method.fidelity import measure, view_bytes
from lpq.stages.relabel import Labeller, RenderedBatch

runner = CliRunner()


@pytest.mark.reference
def test_fidelity_of_mr_is_numpys_total_variation_and_kl() -> None:
    """MR-3 in float32: q is the softmax over the top 3 logits at T, zero elsewhere (KL infinite); full labels in
    float32 are the full softmax (distance 0)."""
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, (64, 9)).astype(np.float32)
    got = measure(logits, Quant.of("mr", 3, "f32", 9), [4.0, 2.0])
    for j, t in enumerate((4.0, 2.0)):
        z = logits.astype(np.float64) / t
        p = np.exp(z - z.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        top = np.argsort(-logits, axis=1, kind="stable")[:, :3]
        kept = np.take_along_axis(z, top, 1)
        q = np.zeros_like(p)
        np.put_along_axis(q, top, np.exp(kept - kept.max(1, keepdims=True)), 1)
        q /= q.sum(1, keepdims=True)
        assert got["tv"][j] == pytest.approx(0.5 * np.abs(p - q).sum(1).mean(), rel=1e-6)
        assert got["kl"][j] is None  # classes outside the top 3 get no mass
        assert got["top1_agreement"][j] == 1.0
    full = measure(logits, Quant.of("none", 9, "f32", 9), [4.0])
    assert full["tv"][0] == pytest.approx(0.0, abs=1e-7) and full["kl"][0] == pytest.approx(0.0, abs=1e-7)


def test_budget_chooses_the_closest_code_that_fits_and_says_why(tmp_path: Path) -> None:
    header = make_header(classes=40, images=64, batch_size=16, epochs=10, values="f32")
    full = write_file(tmp_path / "full.lpql", header, make_records(header, seed=3))
    out = tmp_path / "q.lpql"
    result = runner.invoke(app, ["quantize", str(full), "--budget", "x4", "-o", str(out), "--json"])
    assert result.exit_code == 0, result.output
    choice = json.loads(result.stdout)["choice"]
    full_view = view_bytes(Quant.of("none", 40, "i8", 40), 40)
    assert choice["pruning"] == 4 and [p["pruning"] for p in choice["prunings"]] == [4]  # under x10: the budget's
    assert 0 < choice["reserved_view_bytes"] < full_view  # the file's frames, augmentation and header
    assert choice["allowed_view_bytes"] == pytest.approx(full_view * 4 / 4 - choice["reserved_view_bytes"])
    assert all(f["view_bytes"] <= choice["allowed_view_bytes"] for f in choice["tried"])
    assert {f["code"].split("-")[0] for f in choice["tried"]} == {"mr", "ms", "tail", "sampled", "basis"}
    assert choice["chosen"]["tv_mean"] == min(f["tv_mean"] for f in choice["tried"]) and not choice["named"]
    with LpqlReader(out) as r:
        q = r.header.quant
        assert r.header.prune.ratio == 4 and len(r.batch_ids) == 40 / 4  # pruned as lpq prune --ratio 4 would
    assert q.name == choice["chosen"]["code"].split(" ")[0] and q.k == choice["chosen"]["k"]
    table = runner.invoke(app, ["quantize", str(full), "--budget", "x4", "-o", str(tmp_path / "t.lpql")])
    assert table.exit_code == 0 and "chose" in table.stdout and "TV mean" in table.stdout

    small = runner.invoke(app, ["quantize", str(full), "--budget", "x400", "-o", str(tmp_path / "s.lpql")])
    assert small.exit_code == 2 and "budget-too-small" in small.stderr and "up to x40" in small.stderr
    assert len(small.stderr.strip().splitlines()) == 1 and not (tmp_path / "s.lpql").exists()


def test_a_budget_of_x100_writes_at_most_a_hundredth_of_full_8_bit_labels(tmp_path: Path) -> None:
    """The issue's command on full labels: the budget prunes (the authors' x10, more while no code is close
    enough), codes, and the file written, overhead and all, is at most 1/100 of the same labels in full 8-bit
    values (as lpq quantize --values i8 writes them, and as raw bytes: C + 2 a view)."""
    header = make_header(classes=100, images=500, batch_size=50, epochs=40, values="f32")
    full = write_file(tmp_path / "full.lpql", header, make_records(header, seed=1))
    i8 = tmp_path / "i8.lpql"
    assert (
        runner.invoke(app, ["quantize", str(full), "--scheme", "none", "--values", "i8", "-o", str(i8)]).exit_code == 0
    )
    small = tmp_path / "small.lpql"
    result = runner.invoke(app, ["quantize", str(full), "--budget", "x100", "-o", str(small)])
    assert result.exit_code == 0, result.output
    said = " ".join(result.stdout.split())
    assert "chose" in said and "prunings tried" in said and "x10" in said
    assert small.stat().st_size <= i8.stat().st_size / 100
    assert small.stat().st_size <= 40 * 500 * (100 + 2) / 100
    with LpqlReader(small) as r:
        assert r.header.prune.ratio >= 10 and r.header.quant.scheme != "none"


def test_a_budget_given_a_code_keeps_the_authors_pruning_and_its_largest_k(tmp_path: Path) -> None:
    """--budget x100 --scheme mr: the user chose MR-k (it trained better students than the full labels with a
    strong teacher), so the budget keeps x10 and takes the largest k whose raw bytes per view fit what the file's
    overhead leaves of 1/100; the file written fits, and is the one lpq prune --ratio 10 then quantize --top-k k
    write by hand."""
    header = make_header(classes=100, images=500, batch_size=50, epochs=40, values="f32")
    full = write_file(tmp_path / "full.lpql", header, make_records(header, seed=1))
    i8 = tmp_path / "i8.lpql"
    assert runner.invoke(app, ["quantize", str(full), "--scheme", "none", "-o", str(i8)]).exit_code == 0
    out = tmp_path / "mr.lpql"
    result = runner.invoke(app, ["quantize", str(full), "--budget", "x100", "--scheme", "mr", "-o", str(out), "--json"])
    assert result.exit_code == 0, result.output
    choice = json.loads(result.stdout)["choice"]
    assert choice["pruning"] == 10 and [p["pruning"] for p in choice["prunings"]] == [10] and choice["named"]
    assert {f["code"].split("-")[0] for f in choice["tried"]} == {"mr"}
    with LpqlReader(out) as r:
        k = r.header.quant.k
        assert (r.header.quant.scheme, r.header.prune.ratio) == ("mr", 10)
    assert out.stat().st_size <= i8.stat().st_size / 100
    pruned = tmp_path / "p.lpql"
    assert runner.invoke(app, ["prune", str(full), "--ratio", "10", "-o", str(pruned)]).exit_code == 0
    allowed = choice["allowed_view_bytes"]
    assert view_bytes(Quant.of("mr", k, "i8", 100), 100) <= allowed < view_bytes(Quant.of("mr", k + 1, "i8", 100), 100)
    more = tmp_path / "more.lpql"
    by_hand = ["quantize", str(pruned), "--scheme", "mr", "--top-k", str(k), "-o", str(more)]
    assert runner.invoke(app, by_hand).exit_code == 0
    assert more.read_bytes() == out.read_bytes()
    refused = runner.invoke(app, ["quantize", str(full), "--budget", "x100", "--scheme", "none", "-o", str(more)])
    assert refused.exit_code == 2 and "--scheme none keeps every class" in refused.stderr


def test_relabel_with_a_budget_writes_the_code_it_chose(
    digits_teacher: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """relabel --budget chooses on a sample of the kept batches' logits, then writes every kept batch in that code:
    the same records as a relabel that names the pruning and the code itself. The teacher sees a batch at most
    twice (chosen on, then written): a basis code's fit reuses the logits the choice was made on."""
    seen: Counter[int] = Counter()
    call = Labeller.__call__

    def counted(self: Labeller, item: RenderedBatch) -> tuple:
        seen[item.batch_id] += 1
        return call(self, item)

    monkeypatch.setattr(Labeller, "__call__", counted)
    base = ["relabel", "digits", "--teacher", str(digits_teacher), "--epochs", "20", "--json", "-q"]
    result = runner.invoke(app, [*base, "--budget", "x20", "-o", str(tmp_path / "b.lpql")])
    assert result.exit_code == 0, result.output
    monkeypatch.undo()
    choice = json.loads(result.stdout)["choice"]
    assert choice["chosen"]["code"].startswith("basis") and max(seen.values()) == 2  # a fit that saw a batch again
    full_view = view_bytes(Quant.of("none", 10, "i8", 10), 10)
    allowed = full_view * choice["pruning"] / 20 - choice["reserved_view_bytes"]
    assert choice["allowed_view_bytes"] == pytest.approx(allowed)
    with LpqlReader(tmp_path / "b.lpql") as r:
        q = r.header.quant
        assert (q.name, q.k) == (choice["chosen"]["code"].split(" ")[0], choice["chosen"]["k"])
        chosen = r.header.quant
        budgeted = [r.read(int(b)) for b in r.batch_ids]
    assert choice["pruning"] == r.header.prune.ratio and choice["pruning"] >= 10
    code = ["--ratio", f"{choice['pruning']:g}", "--scheme", chosen.scheme, "--top-k", str(chosen.k), "--values", "i8"]
    code += ["--tail-points", str(chosen.tail)] if chosen.tail else []
    code += ["--sample-temp", str(chosen.sample_temperature)] if chosen.sample_temperature else []
    code += ["--rank", str(chosen.rank)] if chosen.rank is not None else []
    named = runner.invoke(app, [*base, *code, "-o", str(tmp_path / "n.lpql")])
    assert named.exit_code == 0, named.output
    with LpqlReader(tmp_path / "n.lpql") as r:
        assert r.header.quant == chosen
        for a, b in zip(budgeted, (r.read(int(i)) for i in r.batch_ids), strict=True):
            assert np.array_equal(a.values, b.values) and np.array_equal(a.indices, b.indices)


def test_relabel_with_a_budget_and_a_code_writes_that_code(digits_teacher: Path, tmp_path: Path) -> None:
    """relabel --budget x20 --scheme mr: MR-k at the first pruning where it fits (on 10 classes x10 leaves no room
    for one logit once the file's overhead is paid), its largest k there, as quantize does."""
    cmd = ["relabel", "digits", "--teacher", str(digits_teacher), "--epochs", "20", "--budget", "x20"]
    result = runner.invoke(app, [*cmd, "--scheme", "mr", "-o", str(tmp_path / "m.lpql"), "--json", "-q"])
    assert result.exit_code == 0, result.output
    choice = json.loads(result.stdout)["choice"]
    assert choice["named"] and choice["chosen"]["code"].startswith("mr-")
    *before, last = choice["prunings"]
    assert before[0]["pruning"] == 10 and all(p["code"] is None for p in before) and last["code"] is not None
    with LpqlReader(tmp_path / "m.lpql") as r:
        q, pruning = r.header.quant, r.header.prune.ratio
    assert (q.scheme, q.k) == ("mr", choice["chosen"]["k"]) and pruning == choice["pruning"] == last["pruning"]


@pytest.mark.parametrize("command", ["relabel", "quantize"])
def test_a_budget_with_a_k_is_refused_before_any_work(command: str, tmp_path: Path) -> None:
    """--budget chooses k, so --top-k with it is a contradiction: both commands refuse it in one line, exit 2,
    before reading a teacher or a label file (neither is one here) and without writing."""
    out, junk = tmp_path / "out.lpql", tmp_path / "junk"
    junk.write_bytes(b"not a file of ours")
    source = ["digits", "--teacher", str(junk)] if command == "relabel" else [str(junk)]
    result = runner.invoke(app, [command, *source, "--budget", "x100", "--top-k", "5", "-o", str(out)])
    assert result.exit_code == 2 and "drop --top-k, or drop --budget" in result.stderr, result.output
    assert len(result.stderr.strip().splitlines()) == 1 and not out.exists()
