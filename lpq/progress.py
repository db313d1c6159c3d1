"""The one Rich progress bar style of every long job: description, bar, count, rate, ETA, live fields."""

from __future__ import annotations

import sys

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, Task, TextColumn, TimeRemainingColumn
from rich.text import Text


class RateColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("-/s" if speed is None else f"{speed:.2f}/s", style="cyan")


def progress(enabled: bool) -> Progress:
    """A stderr progress bar; ``enabled`` False (--quiet, tests, no terminal) draws nothing.

    Tasks carry an ``info`` field for live numbers (loss, accuracy, temperature).
    """
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
        console=Console(stderr=True),
        disable=not enabled or not sys.stderr.isatty(),
        refresh_per_second=4,
    )
