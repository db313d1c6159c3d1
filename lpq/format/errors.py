"""The `.lpql` error family: every malformed, corrupt, unknown-version or mismatched file raises one."""

from __future__ import annotations

from lpq.errors import LpqError


class LpqlError(LpqError):
    """A `.lpql` file cannot be read or written as asked. ``ref`` names the failed check (see spec/lpql-v1.md)."""
