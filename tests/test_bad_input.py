"""Bad input at the command line, every command (issue 29, item 7): one line on stderr, no traceback, the exit code
of its kind, and nothing the user already had changed (every file keeps its bytes, nothing half-written is left).

Each row names a command line over a small workspace; ``{L}`` is a label file, ``{E}`` an existing output file,
``{D}`` a folder, ``{T}`` a teacher, ``{R}`` digits labels. Exit codes: 2 for an error the user can act on, 130
for Ctrl-C.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from lpql_factory import make_header, make_records, write_file
from typer.testing import CliRunner

import lpq.files
import lpq.format.writer
from lpq.cli.app import app

runner = CliRunner()

INPUT_ROWS: list[tuple[str, str, str]] = [  # (case, command line, what the one line must say)
    # missing input, for every command that reads one
    ("inspect: no such file", "inspect {W}/nope.lpql", "does not exist"),
    ("prune: no such file", "prune {W}/nope.lpql --ratio 2 -o {W}/o.lpql", "does not exist"),
    ("quantize: no such file", "quantize {W}/nope.lpql --top-k 2 -o {W}/o.lpql", "does not exist"),
    ("export: no such file", "export {W}/nope.lpql -o {W}/ex", "does not exist"),
    ("train: no such labels", "train digits {W}/nope.lpql -o {W}/run", "does not exist"),
    ("import: no such folder", "import {W}/nope --images digits -o {W}/o.lpql", "does not exist"),
    ("relabel: no such images", "relabel {W}/nope --teacher {T} -o {W}/o.lpql", "data-not-found"),
    ("synth: no such teacher", "synth --teacher {W}/nope.lpqt -o {W}/syn", "teacher-not-found"),
    ("squeeze: no such data", "squeeze --data {W}/nope -o {W}/t.lpqt", "data-not-found"),
    # a folder where a file is expected, and the reverse
    ("inspect: a folder", "inspect {D}", "is a directory"),
    ("train: labels are a folder", "train digits {D} -o {W}/run", "is a directory"),
    ("synth: teacher is a folder", "synth --teacher {D} -o {W}/syn", "is a folder"),
    ("import: a file, not a folder", "import {L} --images digits -o {W}/o.lpql", "is a file"),
    ("relabel: images are a file", "relabel {L} --teacher {T} -o {W}/o.lpql", "data-not-found"),
    ("squeeze: data is a file", "squeeze --data {L} -o {W}/t.lpqt", "data-not-found"),
    # the output is the input, or exists
    ("prune: -o is the input", "prune {L} --ratio 2 -o {L}", "output-is-input"),
    ("quantize: -o is the input", "quantize {L} --top-k 2 -o {L}", "output-is-input"),
    ("prune: -o exists", "prune {L} --ratio 2 -o {E}", "output-exists"),
    ("relabel: -o exists", "relabel digits --teacher {T} -o {E}", "output-exists"),
    # ratios and k out of range
    ("prune: ratio 0", "prune {L} --ratio 0 -o {W}/o.lpql", "ratio"),
    ("prune: ratio -1", "prune {L} --ratio -1 -o {W}/o.lpql", "ratio"),
    ("prune: ratio 1e9", "prune {L} --ratio 1e9 -o {W}/o.lpql", "bad-ratio"),
    ("prune: ratio nan", "prune {L} --ratio nan -o {W}/o.lpql", "ratio"),
    ("relabel: ratio nan", "relabel digits --teacher {T} --ratio nan -o {W}/o.lpql", "ratio"),
    ("quantize: top-k 0", "quantize {L} --top-k 0 -o {W}/o.lpql", "top-k"),
    ("quantize: top-k above C", "quantize {L} --top-k 11 -o {W}/o.lpql", "bad-top-k"),
    # unknown scheme, codec, layout
    ("quantize: unknown scheme", "quantize {L} --scheme foo -o {W}/o.lpql", "'foo' is not one of"),
    ("quantize: unknown codec", "quantize {L} --values f7 -o {W}/o.lpql", "'f7' is not one of"),
    ("export: unknown layout", "export {L} --to foo -o {W}/ex", "'foo' is not one of"),
    # outputs that cannot be written
    ("prune: unwritable folder", "prune {L} --ratio 2 -o /proc/lpq-out.lpql", "io-error"),
    ("quantize: -o under a file", "quantize {L} --top-k 2 -o {E}/o.lpql", "io-error"),
    # files that are not what their name says, and empty ones
    ("inspect: text named .lpql", "inspect {W}/text.lpql", "lpql-bad-magic"),
    ("prune: text named .lpql", "prune {W}/text.lpql --ratio 2 -o {W}/o.lpql", "lpql-bad-magic"),
    ("inspect: empty file", "inspect {W}/empty.lpql", "is empty"),
    ("train: empty labels", "train digits {W}/empty.lpql -o {W}/run", "is empty"),
    ("synth: teacher is a label file", "synth --teacher {L} -o {W}/syn", "teacher-unreadable"),
    # config files
    ("config: unknown key", "prune {L} --config {W}/unknown.toml -o {W}/o.lpql", "config-unknown-key"),
    ("config: wrong type", "prune {L} --config {W}/types.toml -o {W}/o.lpql", "bad-option: ratio"),
    ("config: another command's option", "prune {L} --ratio 2 --config {W}/other.toml -o {W}/o.lpql", "'epochs'"),
    ("config: not TOML", "prune {L} --config {W}/text.toml -o {W}/o.lpql", "config-unreadable"),
    # models and weights that do not exist
    ("squeeze: unknown model", "squeeze --model nosuchnet -o {W}/t.lpqt", "unknown-model"),
    ("squeeze: unknown weights", "squeeze --weights torchvision:nosuchnet.V1 -o {W}/t.lpqt", "weights-unknown"),
    ("train: unknown student", "train digits {R} --model nosuchnet -o {W}/run", "unknown-model"),
    # options a command does not have, and old spellings of renamed ones
    ("inspect: unknown option", "inspect {L} --ratio 2", "No such option"),
    ("quantize: --ms-temperature", "quantize {L} --ms-temperature 2 -o {W}/o.lpql", "it is now --ms-temp"),
    ("train: --temp-start", "train digits {R} --temp-start 4 -o {W}/run", "it is now --start-temp"),
    ("train: --eval-root", "train digits {R} --eval-root {D} -o {W}/run", "it is now --root"),
    ("config: a renamed key", "quantize {L} --config {W}/renamed.toml -o {W}/o.lpql", "it is now ms_temp"),
    ("relabel: --top-k auto", "relabel digits --teacher {T} --top-k auto -o {W}/o.lpql", "lpq quantize --top-k auto"),
    # crafted teacher files (issue 38, item 5): refused by name before anything is allocated
    ("synth: teacher of 10^9 classes", "synth --teacher {W}/t-classes.lpqt -o {W}/syn", "teacher-corrupt"),
    ("synth: teacher input 10^6 px", "synth --teacher {W}/t-size.lpqt -o {W}/syn", "outside 1..8192"),
    ("synth: teacher of another architecture", "synth --teacher {W}/t-arch.lpqt -o {W}/syn", "where resnet18 has"),
    ("synth: teacher naming fewer classes", "synth --teacher {W}/t-names.lpqt -o {W}/syn", "names 9 classes"),
    ("synth: statistics of the wrong shape", "synth --teacher {W}/t-stats.lpqt -o {W}/syn", "statistics of"),
    ("relabel: teacher of 10^9 classes", "relabel digits --teacher {W}/t-classes.lpqt -o {W}/o.lpql", "1000000000"),
    ("synth: teacher of 11 classes", "synth --teacher {W}/t-rows.lpqt -o {W}/syn", "the 11 rows of its classifier"),
]


def crafted(teacher: Path, out: Path, meta: dict[str, Any] | None = None, shrink: str | None = None) -> None:
    """A checksum-valid copy of ``teacher`` whose metadata says ``meta`` instead, or whose tensor ``shrink`` lost a
    row: what a hand edit, or a file made to attack a reader, looks like."""
    import json

    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(teacher), framework="pt") as f:
        doc = json.loads(f.metadata()["lpqt"])
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    if shrink is not None:
        tensors[shrink] = tensors[shrink][1:].contiguous()
    save_file(tensors, str(out), metadata={"lpqt": json.dumps({**doc, **(meta or {})})})


@pytest.fixture(scope="module")
def digits_labels(digits_teacher: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from lpq.configs.relabel import RelabelConfig
    from lpq.stages.relabel import relabel

    out = tmp_path_factory.mktemp("labels") / "digits.lpql"
    relabel(RelabelConfig(images="digits", teacher=digits_teacher, output=out, epochs=1, batch_size=256))
    return out


@pytest.fixture
def workspace(tmp_path: Path, digits_teacher: Path, digits_labels: Path) -> dict[str, str]:
    h = make_header(scheme="none", values="f16")
    labels = write_file(tmp_path / "labels.lpql", h, make_records(h))
    (tmp_path / "existing.lpql").write_bytes(b"a result the user already has")
    (tmp_path / "folder").mkdir()
    (tmp_path / "text.lpql").write_text("not a label file\n")
    (tmp_path / "text.toml").write_text("[[[ not toml\n")
    (tmp_path / "empty.lpql").write_bytes(b"")
    (tmp_path / "unknown.toml").write_text("nonsense = 1\n")
    (tmp_path / "types.toml").write_text('ratio = "two"\n')
    (tmp_path / "other.toml").write_text("epochs = 3\n")
    (tmp_path / "renamed.toml").write_text("ms_temperature = 2.0\n")
    teacher = tmp_path / "teacher.lpqt"
    shutil.copy(digits_teacher, teacher)
    names = [str(i) for i in range(10)]
    crafted(teacher, tmp_path / "t-classes.lpqt", {"num_classes": 10**9})
    crafted(teacher, tmp_path / "t-rows.lpqt", {"num_classes": 11, "class_names": [*names, "10"]})
    crafted(teacher, tmp_path / "t-size.lpqt", {"image_size": 10**6})
    crafted(teacher, tmp_path / "t-arch.lpqt", {"architecture": "resnet18"})
    crafted(teacher, tmp_path / "t-names.lpqt", {"class_names": names[:9]})
    crafted(teacher, tmp_path / "t-stats.lpqt", shrink="stats.features.1.mean")
    shutil.copy(digits_labels, tmp_path / "digits.lpql")
    return {
        "W": str(tmp_path),
        "L": str(labels),
        "E": str(tmp_path / "existing.lpql"),
        "D": str(tmp_path / "folder"),
        "R": str(tmp_path / "digits.lpql"),
    }


def snapshot(folder: Path) -> dict[str, str]:
    files = (p for p in folder.rglob("*") if p.is_file())
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def run_refused(line: str, ws: dict[str, str], code: int) -> str:
    """Run ``line``; check the exit code, the single stderr line and that the workspace is as it was."""
    folder = Path(ws["W"])
    args = [a.format(**ws, T=str(folder / "teacher.lpqt")) for a in line.split()]
    before = snapshot(folder)
    result = runner.invoke(app, args)
    err = result.stderr.strip().splitlines()
    assert result.exit_code == code, (result.exit_code, result.output)
    assert len(err) == 1 and "Traceback" not in result.output, result.output
    assert snapshot(folder) == before  # no file changed, none half-written left behind
    return err[0]


@pytest.mark.parametrize(("line", "says"), [r[1:] for r in INPUT_ROWS], ids=[r[0] for r in INPUT_ROWS])
def test_bad_input_gives_one_line_and_changes_nothing(workspace: dict[str, str], line: str, says: str) -> None:
    assert says in run_refused(line, workspace, 2)


class Vanishing(torch.utils.data.Dataset):
    """A dataset whose file disappeared between listing and reading (issue 38, item 7)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __len__(self) -> int:
        return 1

    def __getitem__(self, i: int) -> bytes:
        return self.path.read_bytes()


def test_an_os_error_in_a_dataloader_worker_is_one_line_naming_the_file(tmp_path: Path) -> None:
    """torch rebuilds a worker's FileNotFoundError from its traceback text (25 lines, no filename): the CLI's line is
    the worker's own error, with the path."""
    from lpq.cli.common import os_error_line

    gone = tmp_path / "gone.png"
    batches = iter(torch.utils.data.DataLoader(Vanishing(gone), batch_size=None, num_workers=1))
    with pytest.raises(FileNotFoundError) as caught:
        next(batches)
    error = caught.value.with_traceback(None)  # the traceback holds the loader: freed here, not by the collector
    del caught, batches  # (which would wait 5 s for its worker, in whichever test runs next)
    assert "Original Traceback" in str(error) and error.filename is None  # what the CLI receives
    line = os_error_line(error)
    assert "\n" not in line and str(gone) in line and line.startswith("[Errno 2] No such file or directory")
    assert os_error_line(OSError(28, "No space left on device")) == "No space left on device"  # no "(no file)"


def test_a_label_file_under_another_name_is_read_by_its_content(workspace: dict[str, str]) -> None:
    """The name never decides: a .lpql renamed .txt is read (its signature says what it is), while text named
    .lpql is refused above."""
    renamed = Path(workspace["W"]) / "labels.txt"
    shutil.copy(workspace["L"], renamed)
    result = runner.invoke(app, ["inspect", str(renamed), "--verify", "--json"])
    assert result.exit_code == 0 and '"verified": true' in result.stdout


class Failing:
    """A writable file whose writes fail as ``fail()`` says (a full disk, a Ctrl-C)."""

    def __init__(self, f: Any, fail: Callable[[], BaseException]) -> None:
        self._f, self._fail = f, fail

    def write(self, _data: bytes) -> int:
        raise self._fail()

    def __enter__(self) -> Failing:
        return self

    def __exit__(self, *exc: object) -> None:
        self._f.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._f, name)


def full_disk() -> OSError:
    return OSError(errno.ENOSPC, "No space left on device")


WRITERS = [  # (case, command line, exit code, how the writer fails)
    ("prune: disk full", "prune {L} --ratio 2 -o {W}/o.lpql", 2, full_disk),
    ("quantize: disk full", "quantize {L} --top-k 2 -o {W}/o.lpql", 2, full_disk),
    ("prune: Ctrl-C", "prune {L} --ratio 2 -o {W}/o.lpql", 130, KeyboardInterrupt),
    ("quantize: Ctrl-C", "quantize {L} --top-k 2 -o {W}/o.lpql", 130, KeyboardInterrupt),
]


@pytest.mark.parametrize(("line", "code", "fail"), [r[1:] for r in WRITERS], ids=[r[0] for r in WRITERS])
def test_a_failed_label_write_leaves_nothing_behind(
    workspace: dict[str, str], line: str, code: int, fail: Callable[[], BaseException], monkeypatch: pytest.MonkeyPatch
) -> None:
    real = open

    def failing_open(path: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        f = real(path, mode, *args, **kwargs)
        return Failing(f, fail) if set(mode) & {"w", "a"} else f

    monkeypatch.setattr(lpq.format.writer, "open", failing_open, raising=False)
    said = run_refused(line, workspace, code)
    assert ("No space left" in said) if code == 2 else said.startswith("interrupted") and "--resume" not in said


class FullAfterHeader(Failing):
    """A disk that fills once the header is written (issue 38, item 8): later writes fail, and so does closing, as a
    buffered file's close does when its last bytes cannot be flushed."""

    def __init__(self, f: Any) -> None:
        super().__init__(f, full_disk)
        self.writes = 0

    def write(self, data: bytes) -> int:
        self.writes += 1
        if self.writes > 2:  # the preamble and the header chunk went through
            raise full_disk()
        return self._f.write(data)

    def close(self) -> None:
        self._f.close()
        raise full_disk()


@pytest.mark.parametrize("line", ["prune {L} --ratio 2 -o {W}/o.lpql", "quantize {L} --top-k 2 -o {W}/o.lpql"])
def test_a_disk_that_fills_midway_leaves_no_partial_file(
    workspace: dict[str, str], line: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = open

    def filling_open(path: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        f = real(path, mode, *args, **kwargs)
        return FullAfterHeader(f) if set(mode) & {"w", "a"} else f

    monkeypatch.setattr(lpq.format.writer, "open", filling_open, raising=False)
    assert "No space left" in run_refused(line, workspace, 2)  # the workspace as it was: no o.lpql.partial


@pytest.mark.parametrize(
    ("line", "written"),
    [("train digits {R} --epochs 1 -q -o {W}/run", "run/state.pt"), ("export {L} -q -o {W}/ex", "batch_0.tar")],
    ids=["train", "export"],
)
def test_a_full_disk_under_torch_save_is_one_line_naming_the_file(
    workspace: dict[str, str], line: str, written: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """torch.save given a path writes through a C++ stream: a full disk was a RuntimeError and a traceback (issue
    38, item 8). Given an open file it raises the file's error, which names the file it writes."""
    real = open

    def full_open(path: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        f = real(path, mode, *args, **kwargs)
        return Failing(f, full_disk) if set(mode) & {"w", "a"} else f

    monkeypatch.setattr(lpq.files, "open", full_open, raising=False)
    args = [a.format(**workspace) for a in line.split()]
    result = runner.invoke(app, args)
    err = result.stderr.strip().splitlines()
    assert result.exit_code == 2 and len(err) == 1 and "Traceback" not in result.output, result.output
    assert "No space left on device" in err[0] and err[0].endswith(f"{written})"), err[0]
    assert not list(Path(workspace["W"]).rglob("*.partial"))  # no half-written checkpoint or folder


STAGES = [  # (case, command line, the step that Ctrl-C interrupts)
    ("relabel", "relabel digits --teacher {T} --epochs 1 -o {W}/o.lpql", "lpq.stages.relabel.label_part"),
    ("export", "export {L} -o {W}/ex", "torch.save"),
    ("squeeze", "squeeze --data digits --epochs 1 -o {W}/t.lpqt", "lpq.stages.squeeze.fit"),
    ("synth", "synth --teacher {T} --iterations 2 -o {W}/syn", "lpq.stages.synth.optimize_images"),
    ("train", "train digits {R} --epochs 1 -o {W}/run", "lpq.stages.train.train_epoch"),
]


@pytest.mark.parametrize(("line", "step"), [r[1:] for r in STAGES], ids=[r[0] for r in STAGES])
def test_ctrl_c_in_every_writing_command_keeps_what_the_user_had(
    workspace: dict[str, str], line: str, step: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(*_args: Any, **_kwargs: Any) -> None:
        raise KeyboardInterrupt

    if step == "torch.save":
        monkeypatch.setattr(torch, "save", interrupted)
    else:
        monkeypatch.setattr(step, interrupted)
    folder = Path(workspace["W"])
    args = [a.format(**workspace, T=str(folder / "teacher.lpqt")) for a in line.split()]
    before = snapshot(folder)
    result = runner.invoke(app, args)
    assert result.exit_code == 130 and "Traceback" not in result.output, result.output
    said = result.stderr.strip().splitlines()[-1]
    assert said.startswith("interrupted") and ("--resume" in said) == (args[0] != "export")  # only where it exists
    after = snapshot(folder)
    assert {k: v for k, v in after.items() if k in before} == before  # what the user had is intact
    # An interrupted command leaves at most a resumable run's own files, never a half-written result by its name.
    new = set(after) - set(before)
    assert not any(n.endswith((".lpql", ".lpqt")) or n.startswith("ex") for n in new), new


def test_traceback_flag_shows_the_trace_for_bug_reports(workspace: dict[str, str]) -> None:
    from lpq.format import LpqlError

    result = runner.invoke(app, ["--traceback", "inspect", f"{workspace['W']}/text.lpql"])
    assert isinstance(result.exception, LpqlError) and result.exception.ref == "lpql-bad-magic"


@pytest.mark.parametrize("command", ["synth --teacher {F} -o {W}/syn", "squeeze --weights {F} -o {W}/t.lpqt"])
def test_a_file_without_read_permission_is_said_so(workspace: dict[str, str], command: str) -> None:
    """safetensors reports any failure to open as "No such file or directory" (issue 38, item 8). Root reads
    every file: the command runs without the capabilities that let it."""
    locked = Path(workspace["W"]) / "locked.safetensors"
    shutil.copy(Path(workspace["W"]) / "teacher.lpqt", locked)
    locked.chmod(0)
    drop = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"] if os.geteuid() == 0 else []
    if drop and shutil.which("setpriv") is None:
        pytest.skip("root without setpriv cannot be refused a file")
    args = [a.format(**workspace, F=locked) for a in command.split()]
    done = subprocess.run([*drop, sys.executable, "-m", "lpq", *args], capture_output=True, text=True)
    err = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(err) == 1, done.stderr
    assert err[0].endswith(f"cannot read {locked}: Permission denied"), err[0]
