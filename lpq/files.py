"""Writes a reader never sees half of: a temporary name beside the target, renamed when complete.

The temporary name is hidden and marked (``.NAME.partial``), so folder scans (class folders, run folders)
never take it for a result, and a crash leaves nothing under the final name. `os.replace` is atomic on
POSIX and Windows for files and for directories whose target does not exist.

Not for: `.lpql` files, whose writer keeps its resumable ``NAME.partial`` on purpose (lpq.format.writer).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from pydantic import BaseModel

from lpq.errors import LpqError

CACHE_ENV = "LPQ_CACHE_DIR"  # where image caches go (lpq --cache-dir sets it); else $XDG_CACHE_HOME/lpq, ~/.cache/lpq


def temporary(path: Path, unique: bool = False) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.partial" if unique else f".{path.name}.partial")


@contextmanager
def atomic(path: Path, unique: bool = False) -> Iterator[Path]:
    """Yields the temporary path to write (a file, or a folder to fill); renames it to ``path`` on success.
    ``unique``: several processes may write the same file at once (a cache every torchrun rank fills), so each
    writes a temporary name of its own and the last rename wins; one shared name let a writer delete or rename
    another's half-written file."""
    tmp = temporary(path, unique)
    _remove(tmp)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        _remove(tmp)
        raise


@contextmanager
def writing(path: Path, named: Path | None = None) -> Iterator[BinaryIO]:
    """``path`` open for writing, its OS errors naming it: a buffered file that meets a full disk raises ENOSPC
    with no file name, and a writer that serializes through a C++ stream (torch.save given a path) raises a
    RuntimeError that is not an OS error at all; given this file, it raises the file's own error. ``named``: the
    path to name instead (the final name of a temporary one)."""
    try:
        with open(path, "wb") as f:
            yield f
    except OSError as e:
        if e.filename is None:
            raise OSError(e.errno, e.strerror, str(named or path)) from None
        raise


@contextmanager
def atomic_file(path: Path) -> Iterator[BinaryIO]:
    """`writing` at the temporary name of `atomic`; renamed to ``path`` once closed."""
    with atomic(path) as tmp, writing(tmp, named=path) as f:
        yield f


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


def check_new(dst: Path) -> None:
    """Refuse to write over anything that exists: nothing a user already produced is lost."""
    if dst.exists():
        raise LpqError("output-exists", f"{dst} already exists", "choose another -o, or delete it first")


def check_paths(src: Path, dst: Path) -> None:
    """Refuse to write over the input or over any existing file."""
    if dst.resolve() == src.resolve():
        raise LpqError("output-is-input", f"-o {dst} is the input file", "write to a new file")
    check_new(dst)
