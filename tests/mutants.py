"""Break each behaviour the reference tests guard, one at a time, and show which tests then fail.

Not collected by pytest; run it by hand after changing a reference test or the code it guards: every mutant must
make at least one test fail. Mutants are made in a temporary copy of lpq/ and tests/ (imported first through
PYTHONPATH), so the working tree is never touched, even when the run is killed.

    python tests/mutants.py
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MUTANTS = [  # (behaviour broken, file, original line, broken line)
    (
        "MR target ignores the temperature",
        "lpq/method/targets.py",
        "probs = torch.softmax(values.float() / t, dim=1)",
        "probs = torch.softmax(values.float(), dim=1)",
    ),
    (
        "replay flips the wrong samples",
        "lpq/method/replay.py",
        "out[i] = resized[0].flip(-1) if aug.flip[i] else resized[0]",
        "out[i] = resized[0] if aug.flip[i] else resized[0].flip(-1)",
    ),
    (
        "CutMix pastes a sample's own pixels",
        "lpq/method/replay.py",
        "= out[partner][:, :, top:bottom, left:right]",
        "= out[:, :, top:bottom, left:right]",
    ),
    (
        "CutMix box left in the teacher's pixels at a student size",
        "lpq/method/replay.py",
        "top, left, bottom, right = scale_box(plan.mix_box, a.input_size, s)",
        "top, left, bottom, right = plan.mix_box",
    ),
    (
        "MS probabilities ignore their temperature",
        "lpq/method/topk.py",
        "probs = softmax(logits, ms_temp)",
        "probs = softmax(logits)",
    ),
    ("MS spreads the rest over all C classes", "lpq/method/targets.py", "/ max(num_classes - k, 1)", "/ num_classes"),
    (
        "tail points taken at the first ranks, not the spec's",
        "lpq/method/topk.py",
        "points = rest[:, tail_ranks(rest.shape[1], tail)]",
        "points = rest[:, :tail]",
    ),
    (
        "sampled weights with the temperatures swapped",
        "lpq/method/targets.py",
        "values.float() * (1.0 / t - 1.0 / sample_temp)",
        "values.float() * (1.0 / sample_temp - 1.0 / t)",
    ),
    (
        "sampled draws at T = 1, not the proposal temperature",
        "lpq/method/topk.py",
        "cdf = np.cumsum(softmax(logits, temperature), axis=1)",
        "cdf = np.cumsum(softmax(logits), axis=1)",
    ),
    (
        "tail mass spread over all C classes",
        "lpq/method/targets.py",
        "(tail / (rest * z))",
        "(tail / (num_classes * z))",
    ),
    (
        "basis rows lose their stored top-k logits",
        "lpq/method/targets.py",
        "return torch.softmax(z.scatter(1, indices, v[:, :k]) / t, dim=1)",
        "return torch.softmax(z / t, dim=1)",
    ),
    (
        "basis coefficients fitted on the top k's classes too",
        "lpq/method/topk.py",
        'gram = w @ w.T - np.einsum("bkr,bks->brs", wk, wk)',
        "gram = w @ w.T",
    ),
    (
        "BN loss ignores the first layer's weight",
        "lpq/method/bn.py",
        "total = total + (first_multiplier if i == 0 else 1.0) * term",
        "total = total + term",
    ),
    (
        "BN loss drops the variance term",
        "lpq/method/bn.py",
        "term = torch.norm(mu - t_mu, 2) + torch.norm(var - t_var, 2)",
        "term = torch.norm(mu - t_mu, 2)",
    ),
    (
        "class statistics keep the second moment, not the variance",
        "lpq/method/bn.py",
        "(s2 / n[:, None] - mean * mean).clamp(min=0)",
        "(s2 / n[:, None]).clamp(min=0)",
    ),
    (
        "class statistics summed into the wrong class",
        "lpq/method/bn.py",
        "acc[0].index_add_(0, self.labels, s1)",
        "acc[0].index_add_(0, self.labels.roll(1), s1)",
    ),
    (
        "DKR step period not scaled to the run",
        "lpq/method/temperature.py",
        "every = max(1, round(s.every * epochs / METHOD_EPOCHS))",
        "every = s.every",
    ),
    (
        "CA's refit computed but not trained with",
        "lpq/method/loss.py",
        "self.value = share(fitted)\n        return self.value",
        "return share(fitted)",
    ),
    (
        "8-bit codes rounded down instead of to the nearest level",
        "lpq/format/codecs.py",
        "codes = np.where(s > 0, np.rint((top - v) / s), 0)",
        "codes = np.where(s > 0, np.floor((top - v) / s), 0)",
    ),
    (
        "fidelity's total variation counts the misplaced mass twice",
        "lpq/method/fidelity.py",
        "tv.append(float(0.5 * (p - q).abs().sum(dim=1).mean()))",
        "tv.append(float((p - q).abs().sum(dim=1).mean()))",
    ),
    (
        "CA picks the worst temperature",
        "lpq/method/loss.py",
        "return float(grid[int(losses.argmin())])",
        "return float(grid[int(losses.argmax())])",
    ),
]


def main() -> int:
    survivors = 0
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp)
        for part in ("lpq", "tests", "pyproject.toml"):
            (shutil.copytree if (ROOT / part).is_dir() else shutil.copy)(ROOT / part, copy / part)
        env = {**os.environ, "PYTHONPATH": str(copy)}  # the copy's lpq before the installed one
        for name, file, original, broken in MUTANTS:
            path = copy / file
            text = path.read_text()
            if text.count(original) != 1:
                print(f"{name}: the line to break is not in {file} once; update this list")
                return 2
            path.write_text(text.replace(original, broken))
            run = subprocess.run(
                [sys.executable, "-m", "pytest", "-q", "-m", "reference", "-p", "no:cacheprovider"],
                cwd=copy,
                env=env,
                capture_output=True,
                text=True,
            )
            path.write_text(text)
            if run.returncode not in (0, 1):  # collection or usage errors: no test ran, none could fail
                print(f"{name}: pytest could not run the tests (exit {run.returncode}):\n{run.stdout[-2000:]}")
                return 2
            lines = run.stdout.splitlines()
            failed = [line.split("::")[1].split(" ")[0] for line in lines if line.startswith("FAILED")]
            survivors += not failed
            print(f"{name}: {', '.join(failed) or 'NO TEST FAILED'}", flush=True)
    return 1 if survivors else 0


if __name__ == "__main__":
    sys.exit(main())
