"""How long jobs report: a Rich progress bar on a terminal, plain log lines everywhere else.

ImageNet jobs run under nohup, SLURM or CI with stderr in a file, where a bar draws nothing. Off a terminal a
job prints one line every ``every`` seconds (stage, done/total, rate, ETA, live numbers) and one at each
boundary the stage announces (an epoch, a class); with ``log`` the same lines also go to a file (a run folder's
log.txt), terminal or not. ``enabled`` False (--quiet, library calls) prints nothing but still writes the log.

    with progress(show, log=out / "log.txt") as bar:
        task = bar.add_task("train student", total=steps, info="")
        bar.update(task, advance=1, info="loss 0.41")
        bar.note("epoch 1/300: loss 0.41, top-1 12.5%")
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, Task, TextColumn, TimeRemainingColumn
from rich.text import Text

LOG_EVERY = 30.0  # seconds between plain progress lines off a terminal (--log-every)


class RateColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("-/s" if speed is None else f"{speed:.2f}/s", style="cyan")


@dataclass
class _Task:
    description: str
    total: float | None
    completed: float
    info: str
    started: float = field(default_factory=time.monotonic)
    first: float = 0.0  # completed when the task was added (a resumed job does not count it in its rate)

    def line(self) -> str:
        elapsed = time.monotonic() - self.started
        rate = (self.completed - self.first) / elapsed if elapsed > 0 else 0.0
        done = f"{self.completed:g}" + (
            f"/{self.total:g} ({100 * self.completed / self.total:.0f}%)" if self.total else ""
        )
        eta = f", ETA {_duration((self.total - self.completed) / rate)}" if self.total and rate > 0 else ""
        return f"{self.description}: {done}, {rate:.2f}/s{eta}" + (f", {self.info}" if self.info else "")


def _duration(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


class Reporter:
    """The progress of one job (module docstring). The subset of Rich's Progress the stages use, plus ``note``."""

    def __init__(self, enabled: bool, every: float = LOG_EVERY, log: Path | None = None) -> None:
        self.every = every
        self.tasks: dict[int, _Task] = {}
        self.bar = _bar() if enabled and sys.stderr.isatty() else None
        self.lines = enabled and self.bar is None
        self.log_path = log
        self._log: TextIO | None = None
        self._last = time.monotonic()

    def __enter__(self) -> Reporter:
        if self.bar is not None:
            self.bar.__enter__()
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log = open(self.log_path, "a", buffering=1)
        return self

    def __exit__(self, *exc: object) -> None:
        for task in self.tasks.values():
            if task.total and task.completed >= task.total:
                self._emit(task.line())
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
        if self._log is not None:
            self._log.close()

    def add_task(self, description: str, total: float | None = None, completed: float = 0, info: str = "") -> int:
        task_id = self.bar.add_task(description, total=total, completed=completed, info=info) if self.bar else 0
        task_id = task_id if self.bar else len(self.tasks)
        self.tasks[task_id] = _Task(description, total, completed, info, first=completed)
        return task_id

    def update(self, task_id: int, advance: float = 0, info: str | None = None) -> None:
        task = self.tasks[task_id]
        task.completed += advance
        task.info = task.info if info is None else info
        if self.bar is not None:
            self.bar.update(task_id, advance=advance, **({} if info is None else {"info": info}))
        if time.monotonic() - self._last >= self.every:
            self._emit(task.line())

    def note(self, text: str) -> None:
        """A line at a boundary the stage announces (an epoch or a class done), after the name of the job's latest
        task, so interleaved logs say which stage (and which student) speaks: printed above a bar, or as is."""
        if self.tasks:
            text = f"{list(self.tasks.values())[-1].description}: {text}"
        if self.bar is not None:
            self.bar.console.print(text, highlight=False)
            self._write(text)
        else:
            self._emit(text)

    def _emit(self, text: str) -> None:
        self._last = time.monotonic()
        if self.lines:
            print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)
        self._write(text)

    def _write(self, text: str) -> None:
        if self._log is not None:
            self._log.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {text}\n")


def _bar() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
        console=Console(stderr=True),
        refresh_per_second=4,
    )


@dataclass(frozen=True)
class Show:
    """Whether a job reports (not with --quiet) and how often off a terminal (--log-every): what the CLI hands
    the library's ``show`` parameters (a plain bool means the default interval)."""

    enabled: bool = True
    every: float = LOG_EVERY

    def __bool__(self) -> bool:
        return self.enabled


def progress(show: bool | Show, log: Path | None = None) -> Reporter:
    """The reporter of one long job (module docstring)."""
    every = show.every if isinstance(show, Show) else LOG_EVERY
    return Reporter(bool(show), every, log)
