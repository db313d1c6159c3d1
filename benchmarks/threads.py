"""Two `lpq demo` started together against the two one after the other, with lpq's thread choice and the old one.

Claim (issue: the first ten minutes, and a shared machine): two demos started together on our 2-core machine
finish within 1.3x the time of running them one after the other. lpq computes with the usable CPUs other work
leaves free and lets idle OpenMP threads sleep (``OMP_WAIT_POLICY=PASSIVE``; lpq.cpus). The old choice took every
core and let idle threads spin: here ``OMP_NUM_THREADS`` = all cores and ``GOMP_SPINCOUNT=300000``, libgomp's
documented spin without a wait policy, which overrides the passive policy. Every demo is a fresh process with a
fresh output folder over one warm image cache. For each choice, in one run of this script: one demo, then another
(sequential: the sum), then two started together (together: the later finish); the report is together /
sequential, and the lone demo's seconds under each choice (what a user waits for the first run).

    python benchmarks/threads.py              # about 12 minutes on 2 cores; nothing else should run meanwhile
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import load, load_note, section, table, write_result

CHOICES = {
    "lpq (free CPUs, idle threads sleep)": {},
    "old (every core, idle threads spin)": {"OMP_NUM_THREADS": str(os.cpu_count()), "GOMP_SPINCOUNT": "300000"},
}


def demo(out: Path, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "lpq", "demo", "-q", "-o", str(out)],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def finish(*runs: subprocess.Popen) -> None:
    for run in runs:
        _, err = run.communicate()
        if run.returncode != 0:
            sys.exit(f"lpq demo failed: {err.decode()[-2000:]}")


def measure(work: Path, env: dict[str, str], tag: str) -> dict[str, float]:
    times = []
    for i in range(2):
        t0 = time.perf_counter()
        finish(demo(work / f"{tag}-alone-{i}", env))
        times.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    finish(demo(work / f"{tag}-pair-0", env), demo(work / f"{tag}-pair-1", env))
    together = time.perf_counter() - t0
    return {"alone_s": times, "sequential_s": sum(times), "together_s": together, "ratio": together / sum(times)}


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        os.environ["LPQ_CACHE_DIR"] = str(work / "cache")
        finish(demo(work / "warm-up", {}))  # the digits cache, decoded once for every later demo
        rows = {name: measure(work, env, f"c{i}") for i, (name, env) in enumerate(CHOICES.items())}
    for name, r in rows.items():
        print(f"{name}: alone {r['alone_s'][0]:.1f} s, {r['alone_s'][1]:.1f} s; together {r['together_s']:.1f} s, "
              f"x{r['ratio']:.2f} of sequential", flush=True)  # fmt: skip
    write_result("threads", {"cpus": os.cpu_count(), "choices": rows})


# RESULTS.md: this benchmark's section, rendered from its JSON (benchmarks/run_all.py --render).


def results_section(cmd: str) -> list[str]:
    d = load("threads")
    if not d:
        return []
    rows = [
        [
            name,
            " / ".join(f"{t:.0f} s" for t in r["alone_s"]),
            f"{r['sequential_s']:.0f} s",
            f"{r['together_s']:.0f} s",
            f"x{r['ratio']:.2f}",
        ]
        for name, r in d["choices"].items()
    ]
    ours, old = d["choices"].values()
    return [
        *section("Two demos at once on a shared machine", cmd),
        f"`lpq demo` on {d['cpus']} cores{load_note(d)}: each choice runs one demo, then another, then two started "
        "together; the claim is together <= 1.3x sequential.",
        "",
        table(["threads", "one demo alone", "one after the other", "two together", "together / sequential"], rows),
        "",
        f"With lpq's choice two demos together take x{ours['ratio']:.2f} of their sequential time "
        f"({'within' if ours['ratio'] <= 1.3 else 'over'} the 1.3x target); with every core spinning, "
        f"x{old['ratio']:.2f}. A lone demo takes {min(ours['alone_s']):.0f}-{max(ours['alone_s']):.0f} s with lpq's "
        f"choice against {min(old['alone_s']):.0f}-{max(old['alone_s']):.0f} s spinning: sleeping threads wake "
        "later on the demo's tiny 16 px tensors, the price of not starving a neighbour.",
        "",
    ]


if __name__ == "__main__":
    main()
