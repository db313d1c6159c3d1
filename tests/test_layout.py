"""The floors of the house: a room imports only rooms below it, stage drivers never each other, and the
format package neither torch nor typer (so any numpy program can read `.lpql` files)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

LPQ = Path(__file__).resolve().parents[1] / "lpq"
# Rooms by floor; a module may import its own room and any room on a lower floor.
FLOORS = {
    "errors": 0,
    "choices": 0,
    "cpus": 0,
    "locks": 0,
    "format": 1,
    "files": 1,
    "progress": 1,
    "runtime": 1,
    "configs": 2,
    "data": 2,
    "models": 3,
    "artifacts": 4,
    "method": 5,
    "stages": 6,
    "interop": 6,
    "demo": 7,
    "api": 7,
    "cli": 8,
    "__main__": 9,
}


def imports(path: Path) -> list[str]:
    """Every module a file imports, at any depth (lazy imports inside functions included)."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append(node.module)
    return out


def room(module: str) -> str:
    return module.split(".")[1] if module.count(".") else "__init__"


FILES = sorted(p for p in LPQ.rglob("*.py") if p.name != "__init__.py" or p.parent != LPQ)


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(LPQ)))
def test_a_room_imports_only_rooms_below_it(path: Path) -> None:
    here = path.relative_to(LPQ).parts[0].removesuffix(".py")
    for module in imports(path):
        if module == "lpq" or not module.startswith("lpq."):
            continue  # third-party, or `from lpq import __version__`
        there = room(module)
        if there == here:
            if here == "stages":
                assert module.split(".")[2] == path.stem, f"{path.name} imports {module}: stages never import stages"
            continue
        assert FLOORS[there] < FLOORS[here], f"{path.relative_to(LPQ)} imports {module}, which is not below it"


def test_format_needs_neither_torch_nor_typer() -> None:
    for path in (LPQ / "format").glob("*.py"):
        heavy = [m for m in imports(path) if m.split(".")[0] in ("torch", "typer", "torchvision")]
        assert not heavy, f"{path.name} imports {heavy}"


PLATFORM_ONLY = {"fcntl", "msvcrt", "termios", "resource"}


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(LPQ)))
def test_no_platform_only_module_is_imported_at_module_level(path: Path) -> None:
    """``import lpq`` and every module work where fcntl does not exist (Windows): locks import it when taken."""
    top = [n for n in ast.parse(path.read_text()).body if isinstance(n, ast.Import | ast.ImportFrom)]
    names = {a.name.split(".")[0] for n in top if isinstance(n, ast.Import) for a in n.names}
    names |= {n.module.split(".")[0] for n in top if isinstance(n, ast.ImportFrom) and n.module}
    assert not names & PLATFORM_ONLY, f"{path.name} imports {names & PLATFORM_ONLY} at module level"


def test_lpq_imports_where_fcntl_does_not_exist() -> None:
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['fcntl'] = None\n"
        "import lpq, lpq.format.writer, lpq.artifacts.run, lpq.data.sources, lpq.stages.train, lpq.cli.app\n"
        "print(lpq.LpqlReader.__name__)"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0 and run.stdout == "LpqlReader\n", run.stderr


def test_the_command_line_starts_without_torch() -> None:
    """lpq --help, lpq inspect and the thread choice made before a command imports torch need no torch import."""
    import subprocess
    import sys

    code = "import sys, lpq.cli.app; print('torch' in sys.modules)"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0 and run.stdout == "False\n", run.stderr


def test_cli_bodies_take_their_config_and_never_read_the_parsers_values() -> None:
    """Issue 39: options are declared once, as config fields; a command body gets the filled model."""
    for path in (LPQ / "cli").glob("*.py"):
        if path.name != "common.py":
            assert "ctx.params" not in path.read_text(), path.name
