"""lpq quantize --budget xN: the code and k chosen by their distance from the full targets (lpq.method.fidelity)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from lpql_factory import make_header, make_records, write_file
from typer.testing import CliRunner

from lpq.cli.app import app
from lpq.format import LpqlReader, Quant
from lpq.method.fidelity import measure, view_bytes

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
    assert choice["allowed_view_bytes"] == pytest.approx(full_view / 4)  # unpruned: a quarter of a full view
    assert all(f["view_bytes"] <= choice["allowed_view_bytes"] for f in choice["tried"])
    assert {f["code"].split("-")[0] for f in choice["tried"]} == {"mr", "ms", "tail", "sampled"}
    assert choice["chosen"]["tv_mean"] == min(f["tv_mean"] for f in choice["tried"])
    with LpqlReader(out) as r:
        q = r.header.quant
    assert q.name == choice["chosen"]["code"].split(" ")[0] and q.k == choice["chosen"]["k"]
    table = runner.invoke(app, ["quantize", str(full), "--budget", "x4", "-o", str(tmp_path / "t.lpql")])
    assert table.exit_code == 0 and "chose" in table.stdout and "TV mean" in table.stdout

    small = runner.invoke(app, ["quantize", str(full), "--budget", "x400", "-o", str(tmp_path / "s.lpql")])
    assert small.exit_code == 2 and "budget-too-small" in small.stderr and "--ratio 39" in small.stderr
    assert len(small.stderr.strip().splitlines()) == 1 and not (tmp_path / "s.lpql").exists()


def test_relabel_with_a_budget_writes_the_code_it_chose(digits_teacher: Path, tmp_path: Path) -> None:
    """relabel --budget chooses on a sample of the kept batches' logits, then writes every kept batch in that code:
    the same records as a relabel that names the code itself."""
    base = ["relabel", "digits", "--teacher", str(digits_teacher), "--epochs", "20", "--ratio", "10", "--json", "-q"]
    result = runner.invoke(app, [*base, "--budget", "x20", "-o", str(tmp_path / "b.lpql")])
    assert result.exit_code == 0, result.output
    choice = json.loads(result.stdout)["choice"]
    assert choice["allowed_view_bytes"] == pytest.approx(view_bytes(Quant.of("none", 10, "i8", 10), 10) * 10 / 20)
    with LpqlReader(tmp_path / "b.lpql") as r:
        q = r.header.quant
        assert (q.name, q.k) == (choice["chosen"]["code"].split(" ")[0], choice["chosen"]["k"])
        chosen = r.header.quant
        budgeted = [r.read(int(b)) for b in r.batch_ids]
    code = ["--scheme", chosen.scheme, "--top-k", str(chosen.k), "--values", "i8"]
    code += ["--tail-points", str(chosen.tail)] if chosen.tail else []
    code += ["--sample-temp", str(chosen.sample_temperature)] if chosen.sample_temperature else []
    named = runner.invoke(app, [*base, *code, "-o", str(tmp_path / "n.lpql")])
    assert named.exit_code == 0, named.output
    with LpqlReader(tmp_path / "n.lpql") as r:
        assert r.header.quant == chosen
        for a, b in zip(budgeted, (r.read(int(i)) for i in r.batch_ids), strict=True):
            assert np.array_equal(a.values, b.values) and np.array_equal(a.indices, b.indices)
