"""A run's record: the settings it started with, its metrics, its result, its log, its lock, and the one rule for
resuming it.

`lpq train` and `lpq synth` keep the record in their output folder (``config.json``, ``metrics.jsonl`` and
``metrics.csv``, ``result.json``, ``log.txt``; train also ``plan.json``, its settings with every default filled);
`lpq squeeze`, whose output is one teacher file, keeps it in files beside that file (``teacher.lpqt.config.json``,
``teacher.lpqt.metrics.csv``, ...). The rule is the same for all three:

- a fresh run needs a place that holds no run, or one that never saved progress (only the record's own files:
  a run killed before its first checkpoint), which it takes over;
- ``--resume`` continues a run started with the same settings (``config.json``) from what it saved, and starts
  one where there is none (so rerunning the same command finishes a job, whatever stopped it);
- while a run writes, its lock refuses a second process; the OS frees the lock when the holder dies.

With a ``board`` (`open_board`: ``--tensorboard DIR``, ``--wandb PROJECT`` or both) every metrics row is mirrored
there too, one scalar per numeric field with the row's first integer field as the step, and images (synth's
contact sheet) can follow: TensorBoard event files through ``torch.utils.tensorboard`` (``lpq[tensorboard]``), a
Weights & Biases run (``lpq[wandb]``; offline with ``WANDB_MODE=offline``) whose id is derived from the run's
place, so a resumed run continues the same W&B run.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypeVar

import numpy as np
from pydantic import BaseModel

from lpq.errors import LpqError
from lpq.files import write_model, write_text
from lpq.locks import try_lock

CONFIG, METRICS, CSV, RESULT, LOG = "config.json", "metrics.jsonl", "metrics.csv", "result.json", "log.txt"
PLAN = "plan.json"  # the settings with every default filled, as the run takes them (lpq train)
LOCK = ".lpq.lock"  # in a run folder while a process writes there
RECORD = frozenset({CONFIG, PLAN, METRICS, CSV, LOG})  # all a run that never saved progress leaves

Row = TypeVar("Row", bound=BaseModel)


def _scalars(row: BaseModel) -> tuple[int, dict[str, float]]:
    """A metrics row as (step, its other numeric fields): the row's first integer field is the step."""
    fields = row.model_dump()
    step_name = next(k for k, v in fields.items() if isinstance(v, int) and not isinstance(v, bool))
    numeric = {k: v for k, v in fields.items() if isinstance(v, int | float) and not isinstance(v, bool)}
    return fields[step_name], {k: v for k, v in numeric.items() if k != step_name}


class Board:
    """Where a run's metrics rows are mirrored besides its own files (`open_board`)."""

    def rows(self, rows: Sequence[BaseModel]) -> None:
        raise NotImplementedError

    def image(self, tag: str, png: Path) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class TensorBoard(Board):
    """A TensorBoard event file in ``folder`` (the optional ``tensorboard`` package: ``lpq[tensorboard]``)."""

    def __init__(self, folder: Path) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise LpqError(
                "extra-missing", "--tensorboard needs the tensorboard package", "pip install 'lpq[tensorboard]'"
            ) from None
        self.writer = SummaryWriter(str(folder))

    def rows(self, rows: Sequence[BaseModel]) -> None:
        for r in rows:
            step, scalars = _scalars(r)
            for k, v in scalars.items():
                self.writer.add_scalar(k, v, step)
        self.writer.flush()

    def image(self, tag: str, png: Path) -> None:
        from PIL import Image

        with Image.open(png) as im:
            self.writer.add_image(tag, np.asarray(im.convert("RGB")), dataformats="HWC")
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class WandbBoard(Board):
    """A Weights & Biases run of ``project`` (the optional ``wandb`` package: ``lpq[wandb]``), its files under
    ``folder``/wandb, its id derived from ``place`` (the run's folder or output file), resumed when it exists."""

    def __init__(self, project: str, folder: Path, place: Path, config: dict[str, object]) -> None:
        try:
            import wandb
        except ImportError:
            raise LpqError("extra-missing", "--wandb needs the wandb package", "pip install 'lpq[wandb]'") from None
        import hashlib

        run_id = hashlib.sha256(str(place.resolve()).encode()).hexdigest()[:16]
        folder.mkdir(parents=True, exist_ok=True)
        self.wandb = wandb
        self.run = wandb.init(
            project=project, dir=str(folder), id=run_id, name=place.name, config=config, resume="allow"
        )

    def rows(self, rows: Sequence[BaseModel]) -> None:
        for r in rows:
            step, scalars = _scalars(r)
            self.run.log(scalars, step=step)

    def image(self, tag: str, png: Path) -> None:
        self.run.log({tag: self.wandb.Image(str(png))})

    def close(self) -> None:
        self.run.finish()


class Boards(Board):
    """Several boards as one."""

    def __init__(self, boards: list[Board]) -> None:
        self.boards = boards

    def rows(self, rows: Sequence[BaseModel]) -> None:
        for b in self.boards:
            b.rows(rows)

    def image(self, tag: str, png: Path) -> None:
        for b in self.boards:
            b.image(tag, png)

    def close(self) -> None:
        for b in self.boards:
            b.close()


def open_board(
    tensorboard: Path | None, wandb: str | None, folder: Path, place: Path, config: dict[str, object]
) -> Board | None:
    """The boards a run's options ask for (None when neither): TensorBoard in its folder, W&B in ``project`` with
    its files in ``folder`` and its id from ``place`` (the run's folder, or the output file its record lies beside)."""
    boards: list[Board] = []
    if tensorboard is not None:
        boards.append(TensorBoard(tensorboard))
    if wandb is not None:
        boards.append(WandbBoard(wandb, folder, place, config))
    return None if not boards else boards[0] if len(boards) == 1 else Boards(boards)


def _as_recorded(saved: dict[str, object], identity: dict[str, object]) -> dict[str, object]:
    """An older record as this version writes it: without the run's own place (no setting of a run), and with a
    path it holds as typed (0.2.0) taken as the absolute path now recorded when it names that path from here."""
    out = {}
    for key, value in saved.items():
        now = identity.get(key)
        if key == "output":
            continue
        if isinstance(value, str) and isinstance(now, str) and not os.path.isabs(value) and os.path.isabs(now):
            value = now if str(Path(value).resolve()) == now else value
        out[key] = value
    return out


def _first_difference(saved: object, identity: dict[str, object]) -> str:
    """' (KEY: SAVED there, NOW here)' for the first setting that differs, or '' when the record is no table."""
    if not isinstance(saved, dict):
        return ""
    key = next((k for k in sorted({*saved, *identity}) if saved.get(k) != identity.get(k)), None)
    return "" if key is None else f" ({key}: {saved.get(key)!r} there, {identity.get(key)!r} here)"


@dataclass(frozen=True)
class RunRecord:
    """The record of the run writing to ``root`` (a folder), or to ``root/<prefix>...`` files beside an output
    file (`beside`). ``what`` names the run in messages."""

    root: Path
    prefix: str = ""
    what: str = "run"
    board: Board | None = None
    settings: str = CONFIG  # the file a resumed run's settings are checked against

    @classmethod
    def beside(cls, output: Path, what: str = "run", board: Board | None = None) -> RunRecord:
        return cls(output.parent, f"{output.name}.", what, board)

    def with_board(self, tensorboard: Path | None, wandb: str | None, config: dict[str, object]) -> RunRecord:
        """This record, mirroring its rows to the boards a run's options ask for (`open_board`): W&B's files go
        into the record's folder, its id comes from the run's place (its folder, or the file it lies beside)."""
        place = self.root / self.prefix.removesuffix(".") if self.prefix else self.root
        return replace(self, board=open_board(tensorboard, wandb, self.root, place, config))

    def file(self, name: str) -> Path:
        return self.root / f"{self.prefix}{name}"

    @property
    def log(self) -> Path:
        return self.file(LOG)

    @property
    def where(self) -> str:
        return str(self.root) if not self.prefix else f"{self.root / self.prefix}*"

    def held(self) -> set[str]:
        """The names (without the prefix) of what the place holds; hidden files (locks, partial writes) aside."""
        if not self.root.is_dir():
            return set()
        names = (p.name for p in self.root.iterdir() if not p.name.startswith("."))
        return {n.removeprefix(self.prefix) for n in names if n.startswith(self.prefix)}

    def check(self, identity: dict[str, object], resume: bool, unstarted: frozenset[str] = frozenset()) -> None:
        """Check the place against this run (the rule above); nothing is written, so a run refused later (bad
        input) leaves the place as it was. ``unstarted``: the run's own files that, alone, mean it saved no
        progress yet."""
        held = self.held()
        started = held - RECORD - unstarted
        if resume and (self.settings in held or started):  # killed before it recorded its settings: starts afresh
            saved = self.read_json(self.settings)
            saved = _as_recorded(saved, identity) if isinstance(saved, dict) else saved
            if saved != identity:  # where the run lies is no setting (older records hold it): a moved run resumes
                differ = _first_difference(saved, identity)
                raise LpqError(
                    "resume-mismatch",
                    f"{self.where} holds a {self.what} with other settings{differ}",
                    "resume with the same settings, or choose another -o",
                )
        elif started:
            raise LpqError(
                "run-exists",
                f"{self.where} already holds a {self.what}",
                "pass --resume to continue it, or choose another -o",
            )

    def start(self, identity: dict[str, object], options: dict[str, object] | None = None) -> None:
        """Record the settings of a run `check` accepted, as it starts working; a run whose checked settings are
        a plan resolved from its options records those options too (config.json, which --config reads back)."""
        self.root.mkdir(parents=True, exist_ok=True)
        write_text(self.file(self.settings), json.dumps(identity, indent=2))
        if options is not None and self.settings != CONFIG:
            write_text(self.file(CONFIG), json.dumps(options, indent=2))

    def read_json(self, name: str) -> object:
        path = self.file(name)
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            raise LpqError(
                "run-corrupt", f"{path} is missing or not JSON", "choose another -o, or delete the run's files"
            ) from None

    # Metrics: one JSON line per epoch (or group), and the same rows as CSV for spreadsheets and plots.

    def rows(self, model: type[Row]) -> list[Row]:
        """The rows recorded so far (none before the first)."""
        path = self.file(METRICS)
        if not path.exists():
            return []
        try:
            return [model.model_validate_json(line) for line in path.read_text().splitlines() if line]
        except ValueError as e:  # pydantic's ValidationError is a ValueError
            raise LpqError(
                "run-corrupt",
                f"{path} holds a line that is no {model.__name__} ({str(e).splitlines()[0]})",
                "choose another -o, or delete the run's files",
            ) from None

    def append(self, row: BaseModel) -> None:
        with open(self.file(METRICS), "a") as f:
            f.write(row.model_dump_json() + "\n")
        self._csv(self.rows(type(row)))
        if self.board is not None:
            self.board.rows([row])

    def write_rows(self, rows: Sequence[BaseModel], to_board: bool = False) -> None:
        """Replace the metrics with ``rows`` (a resumed run drops the epochs after its checkpoint); ``to_board``:
        also to TensorBoard (rows that were not appended one by one)."""
        write_text(self.file(METRICS), "".join(r.model_dump_json() + "\n" for r in rows))
        self._csv(rows)
        if to_board and self.board is not None:
            self.board.rows(rows)

    def _csv(self, rows: Sequence[BaseModel]) -> None:
        if not rows:
            return
        out = io.StringIO()
        w = csv.writer(out, lineterminator="\n")
        columns = list(type(rows[0]).model_fields)
        w.writerow(columns)
        for r in rows:
            w.writerow(_cell(getattr(r, c)) for c in columns)
        write_text(self.file(CSV), out.getvalue())

    def finish(self, result: BaseModel, name: str = RESULT) -> None:
        write_model(self.file(name), result)

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the run's lock while it writes: a second process is refused with the holder's pid; a lock file a
        dead process left is taken over, with a note in the log."""
        path = self.root / (f".{self.prefix}lock" if self.prefix else LOCK)
        created = not self.root.exists()
        self.root.mkdir(parents=True, exist_ok=True)
        f = open(path, "a+")  # noqa: SIM115 (closed below)
        if not try_lock(f):  # held by this process alone (not by forked DataLoader workers), freed at its death
            f.seek(0)
            holder = f.read().strip() or "another process"
            f.close()
            raise LpqError(
                "run-busy", f"{self.where} is in use by {holder}", "wait for it to finish, or choose another -o"
            )
        f.seek(0)
        stale = f.read().strip()
        if stale:
            with open(self.log, "a") as log:
                log.write(f"took over the lock of {stale}, which is no longer running\n")
        f.truncate(0)
        f.write(f"pid {os.getpid()}\n")
        f.flush()
        try:
            yield
        finally:
            path.unlink(missing_ok=True)
            f.close()
            if created and not any(self.root.iterdir()):  # a run refused before it wrote anything leaves nothing
                self.root.rmdir()


def _cell(v: object) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, list | tuple):
        return " ".join(map(str, v))
    return str(v)


def rank0() -> bool:
    """Whether this process is rank 0 under torchrun, the one that writes a run's record and prints results
    (always, outside torchrun)."""
    return int(os.environ.get("RANK", "0")) == 0
