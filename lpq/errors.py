"""The base of every error lpq reports to a user: bad input or an impossible request, never a bug.

Each error carries a stable kebab-case reference (``lpql-bad-magic``, ``fingerprint-mismatch``), a
sentence saying what happened and, where there is one, a hint saying how to fix it, so the CLI prints one
line and scripts can match on the reference.
"""

from __future__ import annotations

import re

# The last line of a traceback that ends in one of ours: "lpq.format.errors.LpqlError: ref: message; hint".
_RAISED = re.compile(r"^[\w.]*Error: ([a-z0-9]+(?:-[a-z0-9]+)+): (.*)$|^[\w.]*BadImage: ([a-z-]+): (.*)$")


class LpqError(Exception):
    """A problem with what the user asked for or handed us; the CLI maps it to one line and exit code 2.

    Constructed from one argument, it is a copy of an error raised in another process: torch's DataLoader
    re-raises a worker's exception as ``type(text)``, where ``text`` is the worker's traceback, so the
    original reference and message are read back from its last line (without this, the DataLoader would
    raise a bare RuntimeError with the whole traceback).
    """

    def __init__(self, ref: str, message: str | None = None, hint: str = "") -> None:
        if message is None:
            ref, message = from_traceback(ref)
        super().__init__(f"{ref}: {message}" + (f"; {hint}" if hint else ""))
        self.ref = ref
        self.message = message
        self.hint = hint


def from_traceback(text: str) -> tuple[str, str]:
    """(ref, message, hint joined) of the error whose traceback ``text`` is; ``worker-error`` if it is not ours."""
    for line in reversed(text.strip().splitlines()):
        m = _RAISED.match(line.strip())
        if m:
            return (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))
    last = text.strip().splitlines()[-1] if text.strip() else "an error in a worker process"
    return "worker-error", last


class LpqWarning(UserWarning):
    """Something the user should know while the work goes on (files skipped, values rounded); the CLI prints
    each once, as one ``warning:`` line."""
