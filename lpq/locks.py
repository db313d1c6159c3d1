"""Exclusive locks on open files, on every platform: held by this process alone and freed when it dies.

POSIX: fcntl record locks (``lockf``), which the DataLoader workers a process forks do not share (``flock``
locks are shared with forked children, so the workers of a killed run kept its locks and it could not be
resumed at once). Windows: ``msvcrt.locking`` on the file's first byte. ``filelock``, which comes with torch,
takes ``flock`` locks on POSIX, the kind forked workers hold on to, so lpq does not use it. Each platform's
module is imported where a lock is taken, never when lpq is imported.
"""

from __future__ import annotations

import sys
import time
from typing import IO

WINDOWS_RETRY_SECONDS = 0.1  # msvcrt.locking has no blocking wait of its own beyond 10 tries


def try_lock(f: IO) -> bool:
    """Take the exclusive lock on ``f`` if no other process holds it; whether it was taken."""
    if sys.platform == "win32":
        import msvcrt

        f.seek(0)
        try:
            msvcrt.locking(f.fileno(), msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    import fcntl

    try:
        fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


def lock(f: IO) -> None:
    """Wait for the exclusive lock on ``f`` and take it."""
    if sys.platform == "win32":
        while not try_lock(f):
            time.sleep(WINDOWS_RETRY_SECONDS)
        return
    import fcntl

    fcntl.lockf(f, fcntl.LOCK_EX)
