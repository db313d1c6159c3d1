"""Writes a reader never sees half of: a temporary name beside the target, renamed when complete.

The temporary name is hidden and marked (``.NAME.partial``), so folder scans (class folders, run folders)
never take it for a result, and a crash leaves nothing under the final name. `os.replace` is atomic on
POSIX and Windows for files and for directories whose target does not exist.

Not for: `.lpql` files, whose writer keeps its resumable ``NAME.partial`` on purpose (lpq.format.writer).
"""

from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pydantic import BaseModel

from lpq.errors import LpqError

CACHE_ENV = "LPQ_CACHE_DIR"  # where image caches go (lpq --cache-dir sets it); else $XDG_CACHE_HOME/lpq, ~/.cache/lpq


def temporary(path: Path) -> Path:
    return path.with_name(f".{path.name}.partial")


@contextmanager
def atomic(path: Path) -> Iterator[Path]:
    """Yields the temporary path to write (a file, or a folder to fill); renames it to ``path`` on success."""
    tmp = temporary(path)
    _remove(tmp)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        _remove(tmp)
        raise


def write_text(path: Path, text: str) -> None:
    with atomic(path) as tmp:
        tmp.write_text(text)


def write_model(path: Path, model: BaseModel) -> None:
    write_text(path, model.model_dump_json(indent=2))


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


LOCK = ".lpq.lock"  # in a run folder while a process writes there


@contextmanager
def run_lock(folder: Path) -> Iterator[None]:
    """Hold ``folder``'s lock while a run writes there: a second process is refused with the holder's pid; a lock
    file a dead process left is taken over, with a note in the folder's log.txt. The OS releases the lock when
    its holder dies, however it dies."""
    path = folder / LOCK
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    f = open(path, "a+")  # noqa: SIM115 (closed below)
    try:  # a POSIX record lock: held by this process alone (not by forked DataLoader workers), freed at its death
        fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.seek(0)
        holder = f.read().strip() or "another process"
        f.close()
        raise LpqError(
            "run-busy", f"{path.parent} is in use by {holder}", "wait for it to finish, or choose another -o"
        ) from None
    f.seek(0)
    stale = f.read().strip()
    if stale:
        with open(path.parent / "log.txt", "a") as log:
            log.write(f"took over the lock of {stale}, which is no longer running\n")
    f.truncate(0)
    f.write(f"pid {os.getpid()}\n")
    f.flush()
    try:
        yield
    finally:
        path.unlink(missing_ok=True)
        f.close()
        if created and not any(folder.iterdir()):  # a run refused before it wrote anything leaves no folder
            folder.rmdir()


def check_paths(src: Path, dst: Path) -> None:
    """Refuse to write over the input or over any existing file."""
    if dst.resolve() == src.resolve():
        raise LpqError("output-is-input", f"-o {dst} is the input file", "write to a new file")
    if dst.exists():
        raise LpqError("output-exists", f"{dst} already exists", "choose another -o, or delete it first")
