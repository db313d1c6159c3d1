"""The CLI skin: every command documented with an example, errors as one line and exit code 2."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from lpql_factory import make_header, make_records, write_file
from typer.main import get_command
from typer.testing import CliRunner

from lpq.cli.app import app

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


def commands() -> list[str]:
    return sorted(get_command(app).commands)  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", commands())
def test_every_command_has_help_with_an_example(name: str) -> None:
    result = runner.invoke(app, [name, "--help"])
    assert result.exit_code == 0
    assert "Example:" in result.output and "lpq " + name in result.output


@pytest.fixture
def label_file(tmp_path: Path) -> Path:
    h = make_header(scheme="mr", values="i8", k=3)
    return write_file(tmp_path / "l.lpql", h, make_records(h))


def test_inspect_json_reports_bytes_that_add_up(label_file: Path) -> None:
    result = runner.invoke(app, ["inspect", str(label_file), "--json", "--verify"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    p = doc["per_sample"]
    total = p["labels"] + p["indices"] + p["augmentation"] + p["overhead"]
    assert total * doc["samples_stored"] == pytest.approx(label_file.stat().st_size)
    assert doc["batches_stored"] == doc["batches_total"] == 6 and doc["verified"] is True


def test_inspect_tables_and_one_batch(label_file: Path) -> None:
    result = runner.invoke(app, ["inspect", str(label_file)])
    assert result.exit_code == 0 and "Bytes per stored sample" in result.output
    result = runner.invoke(app, ["inspect", str(label_file), "--batch", "4", "--json"])
    view = json.loads(result.stdout)
    assert view["epoch"] == 1 and view["batch"] == 1 and len(view["crops"]) == view["size"] == 8


@pytest.mark.parametrize("bad", sorted((ROOT / "spec/vectors/bad").glob("*.lpql")), ids=lambda p: p.stem)
def test_broken_files_give_one_line_and_exit_2(bad: Path) -> None:
    result = runner.invoke(app, ["inspect", str(bad), "--verify"])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and bad.stem in lines[0] and "Traceback" not in result.output


def test_readme_test_command_is_what_ci_runs() -> None:
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```(?:bash|sh)\n(.*?)```", readme, re.S)
    first_two = [line for line in blocks[0].splitlines() if line.strip() and not line.startswith("#")]
    assert len(first_two) == 2 and "lpq demo" in first_two[0]
    assert first_two[1] in (ROOT / ".ci/run").read_text()


def test_demo_runs_the_whole_pipeline_on_a_tiny_budget(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    result = runner.invoke(app, ["demo", "-o", str(out), "--teacher-epochs", "3", "--ipc", "3", "--iterations", "30",
                                 "--label-epochs", "20", "--student-epochs", "8", "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    full, small = doc["rows"]
    assert small["compression"] > 3  # x10 pruning and MR-3, less the fixed header and calibration bytes
    assert full["top1"] > 10 and small["top1"] > 10  # a learning student, not chance, even on this budget
    assert sorted(p.name for p in out.iterdir()) == ["labels-full.lpql", "labels-x10-mr3-i8.lpql", "run-compressed",
                                                       "run-full", "syn", "teacher.lpqt"]
    again = runner.invoke(app, ["demo", "-o", str(out)])
    assert again.exit_code == 2 and "output-exists" in again.stderr
