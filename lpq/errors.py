"""The base of every error lpq reports to a user: bad input or an impossible request, never a bug.

Each error carries a stable kebab-case reference (``lpql-bad-magic``, ``fingerprint-mismatch``), a
sentence saying what happened and, where there is one, a hint saying how to fix it, so the CLI prints one
line and scripts can match on the reference.
"""

from __future__ import annotations


class LpqError(Exception):
    """A problem with what the user asked for or handed us; the CLI maps it to one line and exit code 2."""

    def __init__(self, ref: str, message: str, hint: str = "") -> None:
        super().__init__(f"{ref}: {message}" + (f"; {hint}" if hint else ""))
        self.ref = ref
        self.message = message
        self.hint = hint
