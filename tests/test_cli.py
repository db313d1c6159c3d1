"""The CLI skin: every command documented with an example, errors as one line and exit code 2."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Annotated, Any, Literal

import pytest
import typer
from lpql_factory import make_header, make_records, write_file
from pydantic import BaseModel, Field
from typer.main import get_command
from typer.testing import CliRunner

from lpq.cli.app import app
from lpq.cli.common import OneLineUsage
from lpq.cli.options import JsonOpt
from lpq.configs import Cli

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


def test_a_command_run_in_a_program_gives_its_warning_display_back(label_file: Path) -> None:
    """The CLI shows lpq's warnings as one line while a command runs, then restores the caller's display."""
    import warnings

    before = warnings.showwarning
    assert runner.invoke(app, ["inspect", str(label_file)]).exit_code == 0
    assert warnings.showwarning is before


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


def run_demo(out: Path, teacher: int, ipc: int, iterations: int, label: int, student: int) -> Any:
    """``lpq demo -o OUT --json`` on a budget (epochs of the teacher, the labels and the students)."""
    budget = {"--teacher-epochs": teacher, "--ipc": ipc, "--iterations": iterations, "--label-epochs": label}
    args = [str(v) for kv in {**budget, "--student-epochs": student}.items() for v in kv]
    result = runner.invoke(app, ["demo", "-o", str(out), *args, "--json"])
    assert result.exit_code == 0, result.output
    return result


@pytest.mark.slow  # about 25 s: run by benchmarks/slow_tests.py (the fast suite runs the demo too small to learn)
def test_demo_students_learn_on_a_small_budget(tmp_path: Path) -> None:
    doc = json.loads(run_demo(tmp_path / "lpq-demo", 3, 5, 30, 40, 40).stdout)
    full, small = doc["rows"]
    assert small["compression"] > 5  # x10 pruning and MR-3, less the fixed header and calibration bytes
    # Learning, chance being 10%. On this budget (50 images, 4 kept epochs) the compact student's top-1 moves by
    # 20 points with the seed or the kept epochs (27-47% over two seeds), hence the loose bound.
    assert doc["teacher_top1"] >= 80 and full["top1"] >= 30 and small["top1"] >= 20


def test_demo_runs_the_whole_pipeline_on_a_tiny_budget(tmp_path: Path) -> None:
    """Every stage, chained, on a budget too small to learn (that is the slow test above): the files, the logs,
    one compression figure with inspect, and the README's own training loop reading the folder."""
    out = tmp_path / "lpq-demo"  # where the README's first command writes, and its examples read
    result = run_demo(out, 1, 2, 5, 20, 3)
    doc = json.loads(result.stdout)
    full, small = doc["rows"]
    for row in (full, small):  # one compression figure: demo's is inspect's, against dense float16 labels
        inspected = json.loads(runner.invoke(app, ["inspect", row["path"], "--json"]).stdout)
        assert row["compression"] == inspected["compression_vs_full"]
    assert small["compression"] > full["compression"]
    assert sorted(p.name for p in out.iterdir()) == [
        "labels-full.lpql",
        "labels-full.lpql.log.txt",
        "labels-x10-mr3-i8.lpql",
        "run-compressed",
        "run-full",
        "syn",
        "teacher.lpqt",
        "teacher.lpqt.config.json",
        "teacher.lpqt.log.txt",
        "teacher.lpqt.metrics.csv",
        "teacher.lpqt.metrics.jsonl",
    ]
    # Off a terminal (the runner's stderr is not one) every stage reports in plain lines, each run folder keeps them.
    # Each line names its stage, and each student its run: the log of two students reads apart.
    for line in (
        "train teacher: epoch 1/1",
        "synth (classwise): 10/10",
        "relabel: ",
        "train student run-full: epoch 3/3: loss",
        "train student run-compressed: epoch 3/3: loss",
    ):
        assert line in result.stderr, line
    assert "train student run-full: epoch 3/3: loss" in (out / "run-full" / "log.txt").read_text()
    assert "group 9 (9)" in (out / "syn" / "log.txt").read_text()
    again = runner.invoke(app, ["demo", "-o", str(out)])
    assert again.exit_code == 2 and "output-exists" in again.stderr

    # The README's "Your own training loop" block, verbatim, beside the demo folder it reads.
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Your own training loop") : readme.index("## The pipeline on CIFAR-10")]
    first, second = re.findall(r"```python\n(.*?)```", section, re.S)
    run = subprocess.run([sys.executable, "-c", first], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert re.fullmatch(r"epoch 0 at T=20: loss \d+\.\d{4}\n", run.stdout), run.stdout
    # The second block (timm, bf16, DKR + CA): the teacher temperature falls, T_s is refitted on the grid.
    run = subprocess.run([sys.executable, "-c", second], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    lines = [re.fullmatch(r"epoch (\d): T=([\d.]+) T_s=([\d.]+) loss \d+\.\d{4}", x) for x in run.stdout.splitlines()]
    assert all(lines) and [int(m.group(1)) for m in lines] == [0, 1, 2, 3], run.stdout
    temps = [float(m.group(2)) for m in lines]
    assert temps[0] == 20 and temps[-1] < 20 and all(0.01 <= float(m.group(3)) <= 1 for m in lines)


def config_models() -> dict[str, type]:
    from lpq.configs.demo import DemoConfig
    from lpq.configs.prune import PruneConfig
    from lpq.configs.quantize import QuantizeConfig
    from lpq.configs.relabel import RelabelConfig
    from lpq.configs.squeeze import SqueezeConfig
    from lpq.configs.synth import SynthConfig
    from lpq.configs.train import TrainConfig

    return {
        "squeeze": SqueezeConfig,
        "synth": SynthConfig,
        "relabel": RelabelConfig,
        "prune": PruneConfig,
        "quantize": QuantizeConfig,
        "train": TrainConfig,
        "demo": DemoConfig,
    }


@pytest.mark.parametrize("name", sorted(config_models()))
def test_cli_options_are_config_fields_with_the_same_defaults(name: str) -> None:
    """One source of truth: a command's options are its config model's fields, defaulting alike, and only the
    output options (and --config) besides."""
    model = config_models()[name]
    params = get_command(app).commands[name].params  # type: ignore[attr-defined]
    assert {p.name for p in params} == {*model.model_fields, "config", "json_out", "quiet"}
    for p in params:
        if p.name in ("config", "json_out", "quiet"):
            continue
        assert p.name in model.model_fields, f"lpq {name} --{p.name} is not a field of {model.__name__}"
        field = model.model_fields[p.name]
        default = getattr(p.default, "value", p.default)
        if field.is_required():
            assert p.default is None or p.required, f"--{p.name}"
        else:
            assert default == (list(field.default) if isinstance(default, list) else field.default), f"--{p.name}"


def test_config_file_fills_options_and_the_command_line_wins(label_file: Path, tmp_path: Path) -> None:
    conf = tmp_path / "q.toml"
    conf.write_text('top-k = 2\nvalues = "f16"\n')
    result = runner.invoke(
        app,
        [
            "quantize",
            str(label_file),
            "--config",
            str(conf),
            "--values",
            "i4",
            "-o",
            str(tmp_path / "q.lpql"),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert (doc["k"], doc["values"]) == (2, "i4")
    conf.write_text("top_k = 2\ncolour = 3\n")
    result = runner.invoke(app, ["quantize", str(label_file), "--config", str(conf), "-o", str(tmp_path / "r.lpql")])
    assert result.exit_code == 2 and "config-unknown-key" in result.stderr and "colour" in result.stderr
    conf.write_text("top_k = [oops\n")
    result = runner.invoke(app, ["quantize", str(label_file), "--config", str(conf), "-o", str(tmp_path / "r.lpql")])
    assert result.exit_code == 2 and "config-unreadable" in result.stderr


def test_a_runs_config_json_repeats_the_run(digits_teacher: Path, digits_subset: str, tmp_path: Path) -> None:
    labels = tmp_path / "l.lpql"
    assert (
        runner.invoke(
            app,
            [
                "relabel",
                digits_subset,
                "--teacher",
                str(digits_teacher),
                "--epochs",
                "3",
                "--top-k",
                "3",
                "-o",
                str(labels),
                "-q",
            ],
        ).exit_code
        == 0
    )
    first = runner.invoke(
        app,
        [
            "train",
            digits_subset,
            str(labels),
            "--epochs",
            "2",
            "--evals",
            "1",
            "--lr",
            "0.002",
            "-o",
            str(tmp_path / "a"),
            "--json",
            "-q",
        ],
    )
    again = runner.invoke(
        app, ["train", "--config", str(tmp_path / "a" / "config.json"), "-o", str(tmp_path / "b"), "--json", "-q"]
    )
    assert first.exit_code == 0 and again.exit_code == 0, again.output
    saved = [json.loads((tmp_path / run / "config.json").read_text()) for run in ("a", "b")]
    assert saved[0] == saved[1] and saved[0]["lr"] == 0.002 and "output" not in saved[0]  # settings, not the place
    assert json.loads(again.stdout)["top1"] == json.loads(first.stdout)["top1"]


def test_public_api_names_load_lazily_and_are_documented() -> None:
    """`import lpq` lists the library's names without importing torch; each has a docstring."""
    code = "import sys, lpq; print(len(lpq.__all__), 'torch' in sys.modules)"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout.split() == [str(len(__import__("lpq").__all__)), "False"]
    import lpq

    for name in lpq.__all__:
        doc = getattr(lpq, name).__doc__
        assert doc and doc.strip(), f"lpq.{name} has no docstring"


def test_progress_lines_off_a_terminal_come_every_interval_and_quiet_prints_none(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from lpq.progress import Show, progress

    with progress(Show(enabled=True, every=0.0), log=tmp_path / "log.txt") as bar:
        task = bar.add_task("stage", total=4, info="")
        for i in range(4):
            bar.update(task, advance=1, info=f"step {i}")
        bar.note("epoch 1 done")
    err = capsys.readouterr().err.splitlines()
    assert [line.split("] ", 1)[1].split(",")[0] for line in err[:4]] == [
        f"stage: {i}/4 (" + f"{25 * i}%)" for i in (1, 2, 3, 4)
    ]
    assert any(line.endswith("epoch 1 done") for line in err)
    assert "epoch 1 done" in (tmp_path / "log.txt").read_text()
    with progress(Show(enabled=False, every=0.0), log=tmp_path / "quiet.txt") as bar:
        bar.update(bar.add_task("stage", total=2, info=""), advance=2)
        bar.note("epoch 1 done")
    assert capsys.readouterr().err == ""  # --quiet: nothing on stderr, the log file still kept
    assert "epoch 1 done" in (tmp_path / "quiet.txt").read_text()


class _Settings(BaseModel):
    """A command's settings, as lpq.configs declares them: every kind of field the generator turns into options."""

    source: Annotated[Path, Field(description="A file."), Cli(argument=True)]
    out: Annotated[Path, Field(description="Where."), Cli(flags=("-o", "--out"))] = Path("out")
    mode: Annotated[Literal["fast", "exact"], Field(description="How.")] = "exact"
    count: Annotated[int, Field(ge=1, description="How many.")] = 3
    again: Annotated[bool, Field(description="Resume."), Cli(flags=("--again",))] = False
    k: Annotated[int | Literal["auto"] | None, Field(description="K or auto."), Cli(metavar="K|auto", text=True)] = None
    box: Annotated[tuple[float, float], Field(description="A pair.")] = (0.5, 1.0)


def test_a_settings_model_is_the_command_line_and_the_config_keys(tmp_path: Path) -> None:
    """lpq.cli.common.command: the options (names, flags, types, defaults, bounds, help) come from the model's
    fields; the body receives the model filled from the command line, then --config, then the defaults."""
    from lpq.cli.common import command, funnel

    mini = typer.Typer(cls=OneLineUsage)

    @mini.command()
    @funnel
    @command(_Settings)
    def run(ctx: typer.Context, cfg: _Settings, json_out: JsonOpt = False) -> None:
        """Echo the settings."""
        print(cfg.model_dump_json())

    @mini.command()
    def other() -> None:  # a second command, so that the app takes the command's name
        """Nothing."""

    def settings(*args: str) -> dict:
        result = runner.invoke(mini, ["run", *args])
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    assert settings("a.txt") == {"source": "a.txt", "out": "out", "mode": "exact", "count": 3, "again": False,
                                 "k": None, "box": [0.5, 1.0]}  # fmt: skip
    given = settings("a.txt", "-o", "b", "--mode", "fast", "--count", "2", "--again", "--k", "auto", "--box", "1", "2")
    assert given == {"source": "a.txt", "out": "b", "mode": "fast", "count": 2, "again": True, "k": "auto",
                     "box": [1.0, 2.0]}  # fmt: skip
    assert settings("a.txt", "--k", "7")["k"] == 7  # text the model converts
    conf = tmp_path / "c.toml"
    conf.write_text('source = "from-file"\ncount = 5\nmode = "fast"\n')
    assert settings("--config", str(conf), "--count", "9") | {"out": None} == {
        "source": "from-file", "out": None, "mode": "fast", "count": 9, "again": False, "k": None, "box": [0.5, 1.0]
    }  # fmt: skip
    for args, says in (
        ([], "bad-usage: missing source"),
        (["a", "--count", "0"], "bad-usage: Invalid value for '--count'"),
        (["a", "--mode", "slow"], "bad-usage: Invalid value for '--mode'"),
        (["a", "--k", "many"], "bad-option: k"),
    ):
        result = runner.invoke(mini, ["run", *args])
        assert result.exit_code == 2 and says in result.stderr, (args, result.output)
    names = {p.name for p in get_command(mini).commands["run"].params}  # type: ignore[attr-defined]
    assert names == {*_Settings.model_fields, "config", "json_out"}
