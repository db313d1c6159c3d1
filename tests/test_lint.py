"""The project's own lint and format settings (pyproject.toml) hold for every Python file: CI runs this."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("args", [["check"], ["format", "--check"]], ids=["check", "format"])
def test_ruff_passes_with_the_projects_settings(args: list[str]) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "ruff", *args, "lpq", "tests", "benchmarks", "spec"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
