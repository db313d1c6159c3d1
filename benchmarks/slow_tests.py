"""The tests marked ``slow``: the suite's longest end-to-end checks, kept out of the 5-minute default run.

They test what the fast suite also covers in pieces (a SIGKILLed relabel resumed to the same file; train, synth
and squeeze under torchrun against one process, relabel's being in the fast suite; a timm teacher loaded from the
Hugging Face cache; an offline wandb run), end to end, mostly in subprocesses.
This runs them with pytest, records each test's outcome and seconds, and RESULTS.md shows the last run.

    python benchmarks/slow_tests.py     # about 2 minutes on 2 cores
"""

from __future__ import annotations

import subprocess
import sys
import time
import xml.etree.ElementTree as ET

from common import OUT, ROOT, load, load_note, section, table, write_result


def main() -> None:
    report = OUT / "slow-tests.xml"
    report.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-m", "slow", f"--junitxml={report}", "-p", "no:cacheprovider"],
        cwd=ROOT,
        check=False,
    )
    seconds = time.perf_counter() - t0
    tests = []
    for case in ET.parse(report).getroot().iter("testcase"):
        failed = case.find("failure") is not None or case.find("error") is not None
        tests.append({"test": f"{case.get('classname')}::{case.get('name')}", "seconds": float(case.get("time", 0)),
                      "passed": not failed and case.find("skipped") is None})  # fmt: skip
    write_result("slow-tests", {"returncode": run.returncode, "seconds": seconds, "tests": tests})
    print(f"{sum(t['passed'] for t in tests)} of {len(tests)} slow tests passed in {seconds:.0f} s")
    sys.exit(run.returncode)


# RESULTS.md: this benchmark's section, rendered from its JSON (benchmarks/run_all.py --render).


def results_section(cmd: str) -> list[str]:
    d = load("slow-tests")
    if not d:
        return []
    rows = [[t["test"].removeprefix("tests."), "passed" if t["passed"] else "FAILED", f"{t['seconds']:.1f}"]
            for t in d["tests"]]  # fmt: skip
    passed = sum(t["passed"] for t in d["tests"])
    return [
        *section("The slow tests", cmd),
        "End-to-end checks kept out of the 5-minute suite (`pytest -m slow`).",
        "",
        table(["test", "outcome", "seconds"], rows),
        "",
        f"{passed} of {len(d['tests'])} passed in {d['seconds']:.0f} s{load_note(d)}.",
        "",
    ]


if __name__ == "__main__":
    main()
