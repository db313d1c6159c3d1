import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import os

# Most tests wait on Python, not on arithmetic: one busy core each. pytest-xdist runs a worker per core
# (pyproject addopts), each computing on one thread whose idle waits sleep, as lpq.cpus arranges for commands, so
# workers do not spin against each other (a spinning OpenMP pool doubled the suite's CPU time for no wall time).
# Through the environment, so that a command run in-process keeps the count (lpq.cpus would otherwise choose by
# the load of the moment, and a test comparing two runs would compare two thread counts' rounding).
os.environ.setdefault("OMP_NUM_THREADS", "1" if "PYTEST_XDIST_WORKER" in os.environ else "2")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import pytest
import torch

torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


@pytest.fixture(scope="session", autouse=True)
def image_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Decoded-image caches of the whole session in one temporary folder (subprocesses inherit it), not ~/.cache."""
    import os

    folder = tmp_path_factory.mktemp("lpq-cache")
    os.environ["LPQ_CACHE_DIR"] = str(folder)
    return folder


@pytest.fixture(scope="session")
def digits_teacher(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A convnet teacher on the digits set, trained once per test session (a few seconds on 2 cores)."""
    from lpq.configs.squeeze import SqueezeConfig
    from lpq.stages.squeeze import squeeze

    out = tmp_path_factory.mktemp("teacher") / "digits.lpqt"
    squeeze(SqueezeConfig(data="digits", epochs=8, output=out))
    return out


@pytest.fixture(scope="session")
def digits_subset(digits_teacher: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A random real subset of the digits set, 10 images a class (lpq synth --init real --iterations 0): students on
    it train an epoch in a fifteenth of the whole set's time, for the tests of a run's mechanics."""
    from lpq.configs.synth import SynthConfig
    from lpq.stages.synth import synthesize

    out = tmp_path_factory.mktemp("subset") / "syn"
    synthesize(SynthConfig(teacher=digits_teacher, output=out, ipc=10, init="real", iterations=0))
    return str(out)


def free_port() -> int:
    """A TCP port no process listens on now, for a torchrun rendezvous."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def torchrun(*args: str) -> list[str]:
    """The command line of ``python -m lpq ARGS`` under torchrun with two processes on a free port."""
    import sys

    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc-per-node",
        "2",
        "--master-port",
        str(free_port()),
        "-m",
        "lpq",
        *args,
    ]


def stderr_of(run: subprocess.CompletedProcess[str]) -> str:
    """A failed run's stderr for the test report: under torchrun a rank's own error comes first and the launcher's
    summary after it, so both ends are kept."""
    err = run.stderr
    return err if len(err) <= 6000 else f"{err[:4000]}\n[...]\n{err[-2000:]}"
