"""The method's numerics against independent references: torchvision's transforms, numpy and hand-computed values.

Each test guards one behaviour of the method (replay, targets, DKR schedules, CA, BN matching, top-k
quantization, 8-bit codes) by computing the expected value without lpq's code for it, so a bug shared by relabel and
training, or by an encoder and its decoder, fails here. Run them alone with ``pytest -m reference``.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision.transforms.v2.functional as TF
from lpql_factory import make_header, make_records, write_file

from lpq.configs.quantize import QuantizeConfig
from lpq.data.sources import ImageSet
from lpq.format import LpqlReader, TempSchedule
from lpq.format.codecs import IntCodec
from lpq.format.rng import SampleAugment
from lpq.method.bn import BNMatcher
from lpq.method.loss import StudentTemperature, fit_student_temperature
from lpq.method.replay import BatchPlan, render, scale_box
from lpq.method.targets import dense_targets, record_targets
from lpq.method.temperature import teacher_temperature
from lpq.method.topk import fit_basis, quantize_logits
from lpq.stages.quantize import quantize_file

pytestmark = pytest.mark.reference


def test_replay_renders_what_torchvision_crops_flips_and_cutmix_pastes() -> None:
    """Three 12x10 images, each cut at a known box, resized to 8 px, flipped or not, then CutMix pastes the
    partner's pixels into a hand-placed box: torchvision's resized_crop and hflip give the same tensor."""
    gen = torch.Generator().manual_seed(0)
    pixels = torch.randint(0, 256, (3, 3, 12, 10), generator=gen, dtype=torch.uint8)
    images = ImageSet("t", pixels, torch.tensor([0, 1, 2]), ["a", "b", "c"], (0.5,) * 3, (0.25,) * 3)
    header = make_header(images=3, batch_size=3, epochs=1, mix="cutmix")  # input_size 8, bilinear
    boxes = [(1, 2, 9, 7), (0, 0, 12, 10), (3, 1, 5, 8)]  # top, left, height, width
    flips = [True, False, True]
    order = [2, 0, 1]  # image of each sample
    partner = np.array([1, 2, 0])
    cut = (2, 3, 6, 8)  # top, left, bottom, right
    aug = SampleAugment(*(np.array(c, np.int32) for c in zip(*boxes)), np.array(flips))
    plan = BatchPlan(0, 0, np.array(order), aug, 0.6875, cut, partner)
    got = render(plan, images, header)

    expect = []
    for i, (top, left, h, w) in enumerate(boxes):
        img = pixels[order[i]].float() / 255.0
        x = TF.resized_crop(img, top, left, h, w, [8, 8], interpolation=TF.InterpolationMode.BILINEAR, antialias=True)
        expect.append(TF.horizontal_flip(x) if flips[i] else x)
    want = torch.stack(expect).clamp(0, 1)
    mixed = want.clone()
    mixed[:, :, 2:6, 3:8] = want[partner][:, :, 2:6, 3:8]
    torch.testing.assert_close(got, mixed, atol=1e-6, rtol=0)


def test_replay_at_a_student_size_is_torchvisions_crop_of_the_same_box_at_that_size() -> None:
    """Labels made at 8 px replayed for a 5 px student: each crop box resized to 5 x 5 by torchvision, the CutMix
    box (2, 3, 6, 8) of the 8 px image scaled by hand to (1, 2, 4, 5): 2*5/8 = 1.25 -> 1, 3*5/8 = 1.875 -> 2,
    6*5/8 = 3.75 -> 4, 8*5/8 = 5."""
    gen = torch.Generator().manual_seed(1)
    pixels = torch.randint(0, 256, (2, 3, 12, 10), generator=gen, dtype=torch.uint8)
    images = ImageSet("t", pixels, torch.tensor([0, 1]), ["a", "b"], (0.5,) * 3, (0.25,) * 3)
    header = make_header(images=2, batch_size=2, epochs=1, mix="cutmix")  # input_size 8, bilinear
    boxes, flips, partner = [(1, 2, 9, 7), (3, 1, 5, 8)], [False, True], np.array([1, 0])
    aug = SampleAugment(*(np.array(c, np.int32) for c in zip(*boxes)), np.array(flips))
    plan = BatchPlan(0, 0, np.array([0, 1]), aug, 0.6875, (2, 3, 6, 8), partner)
    assert scale_box((2, 3, 6, 8), 8, 5) == (1, 2, 4, 5)
    got = render(plan, images, header, size=5)
    expect = []
    for i, (top, left, h, w) in enumerate(boxes):
        x = TF.resized_crop(pixels[i].float() / 255.0, top, left, h, w, [5, 5], antialias=True)
        expect.append(TF.horizontal_flip(x) if flips[i] else x)
    want = torch.stack(expect).clamp(0, 1)
    mixed = want.clone()
    mixed[:, :, 1:4, 2:5] = want[partner][:, :, 1:4, 2:5]
    torch.testing.assert_close(got, mixed, atol=1e-6, rtol=0)


LOGITS = torch.tensor([[4.0, 1.0, 0.0, -2.0, 3.0]])  # C = 5


def _softmax(z: list[float], t: float) -> list[float]:
    e = [math.exp(v / t) for v in z]
    return [v / sum(e) for v in e]


def test_full_and_mr_targets_are_softmaxes_at_the_epochs_temperature() -> None:
    t = 4.0
    full = dense_targets(LOGITS, None, "none", 5, t)
    torch.testing.assert_close(full[0], torch.tensor(_softmax([4.0, 1.0, 0.0, -2.0, 3.0], t)))
    # MR-2: the top-2 logits (classes 0 and 4) softened at T alone, zeros elsewhere
    p0, p4 = _softmax([4.0, 3.0], t)
    mr = dense_targets(torch.tensor([[4.0, 3.0]]), torch.tensor([[0, 4]]), "mr", 5, t)
    torch.testing.assert_close(mr[0], torch.tensor([p0, 0.0, 0.0, 0.0, p4]))


def test_ms_keeps_its_probabilities_and_spreads_the_rest_over_the_unkept_classes() -> None:
    """MS-2 stored at its own temperature 2: the top-2 probabilities of softmax(z / 2) kept, the leftover
    mass split evenly over the C - k = 3 classes not kept; the DKR temperature does not touch them."""
    probs = _softmax([4.0, 1.0, 0.0, -2.0, 3.0], 2.0)
    values, indices = quantize_logits(LOGITS.numpy(), "ms", 2, ms_temp=2.0)
    np.testing.assert_allclose(values[0], [probs[0], probs[4]], rtol=1e-6)
    assert indices.tolist() == [[0, 4]]
    rest = (1.0 - probs[0] - probs[4]) / 3
    for t in (1.0, 7.0):
        target = dense_targets(torch.from_numpy(values), torch.from_numpy(indices), "ms", 5, t)
        torch.testing.assert_close(target[0], torch.tensor([probs[0], rest, rest, rest, probs[4]]))


def test_tail_restores_the_mass_outside_the_top_k_as_numpy_computes_it() -> None:
    """Scheme tail against numpy alone: the sorted tail sampled at the spec's ranks (float power, floor), the
    curve interpolated with np.interp, each unkept class an equal share of sum(exp(curve / T)); at every
    temperature DKR visits. The tail's true mass is close to the restored one; MR-k's target drops it."""
    rng = np.random.default_rng(3)
    c, k, t_points = 40, 5, 4
    logits = rng.normal(0.0, 2.5, (6, c)).astype(np.float32)
    values, indices = quantize_logits(logits, "tail", k, tail=t_points)
    n = c - k
    m = n - t_points + 1
    ranks = [j - 1 + math.floor(m ** (j / (t_points - 1)) + 1e-9) for j in range(t_points)]
    for row, (z, v, idx) in enumerate(zip(logits.astype(np.float64), values, indices)):
        order = np.argsort(-z, kind="stable")
        assert idx.tolist() == order[:k].tolist()
        np.testing.assert_array_equal(v, np.concatenate([z[order[:k]], z[order[k:]][ranks]]).astype(np.float32))
        curve = np.interp(np.arange(n), ranks, z[order[k:]][ranks])
        for temp in (1.0, 2.0, 5.0, 20.0):
            kept, tail = np.exp(z[order[:k]] / temp), np.exp(curve / temp).sum()
            want = np.full(c, tail / n / (kept.sum() + tail))
            want[order[:k]] = kept / (kept.sum() + tail)
            got = dense_targets(torch.from_numpy(values), torch.from_numpy(indices), "tail", c, temp)[row]
            np.testing.assert_allclose(got.numpy(), want, rtol=2e-5, atol=1e-9)
            true_tail = np.exp(z[order[k:]] / temp).sum() / np.exp(z / temp).sum()
            assert abs(got.numpy()[order[k:]].sum() - true_tail) < 0.25 * true_tail + 1e-6


def test_basis_labels_fit_and_decode_as_numpy_computes_them() -> None:
    """Scheme basis against numpy: the basis spans the logits' first principal directions (its projection leaves
    the error of numpy's truncated SVD), each row's coefficients are np.linalg.lstsq's on the classes outside its
    top k, and the target at T is softmax of mean + coefficients @ weights with the top k's own logits in place.
    With logits of rank 3 plus noise, rank 3 restores the target far better than MR-k drops it."""
    rng = np.random.default_rng(11)
    c, k, rank = 30, 4, 3
    logits = (rng.normal(0, 1, (300, rank)) @ rng.normal(0, 2, (rank, c)) + rng.normal(0, 0.2, (300, c))).astype(
        np.float32
    )
    basis = fit_basis(logits, rank)
    x = logits.astype(np.float64)
    centred = x - x.mean(axis=0)
    np.testing.assert_allclose(basis.mean, x.mean(axis=0), rtol=1e-5, atol=1e-5)
    s = np.linalg.svd(centred, compute_uv=False)
    w = basis.weights.astype(np.float64)
    projected = centred @ w.T @ np.linalg.solve(w @ w.T, w)
    assert np.sum((centred - projected) ** 2) == pytest.approx(np.sum(s[rank:] ** 2), rel=1e-4)
    values, indices = quantize_logits(logits[:8], "basis", k, basis=basis)
    for row, z in enumerate(x[:8]):
        top = np.argsort(-z, kind="stable")[:k]
        rest = np.setdiff1d(np.arange(c), top)
        coef = np.linalg.lstsq(w[:, rest].T, z[rest] - basis.mean[rest], rcond=None)[0]
        assert indices[row].tolist() == top.tolist()
        np.testing.assert_allclose(values[row, :k], z[top], rtol=1e-6)
        np.testing.assert_allclose(values[row, k:], coef, rtol=1e-4, atol=1e-4)
        for temp in (2.0, 20.0):
            rebuilt = basis.mean + values[row, k:].astype(np.float64) @ w
            rebuilt[top] = values[row, :k]
            want = np.exp(rebuilt / temp) / np.exp(rebuilt / temp).sum()
            got = dense_targets(torch.from_numpy(values), torch.from_numpy(indices), "basis", c, temp, basis=basis)[row]
            np.testing.assert_allclose(got.numpy(), want, rtol=2e-5, atol=1e-8)
            full = np.exp(z / temp) / np.exp(z / temp).sum()
            mr = np.zeros(c)
            mr[top] = np.exp(z[top] / temp) / np.exp(z[top] / temp).sum()
            assert 0.5 * np.abs(got.numpy() - full).sum() < 0.2 * 0.5 * np.abs(mr - full).sum()


def test_sampled_labels_draw_from_the_softmax_and_weigh_as_numpy_computes() -> None:
    """Scheme sampled against numpy: draws follow softmax(z / T_p) (frequencies over 20,000 draws within 1.5
    points of it), the target of a stored row is the self-normalized weights exp(z (1/T - 1/T_p)) summed per
    class, and averaged over many views' draws it approaches softmax(z / T) at every temperature."""
    rng = np.random.default_rng(5)
    c, k, tp = 12, 8, 4.0
    z = rng.normal(0.0, 2.0, (1, c))
    draws = np.concatenate([quantize_logits(z, "sampled", 2000, sample_temp=tp, seed=s)[1] for s in range(10)], 1)
    freq = np.bincount(draws[0], minlength=c) / draws.size
    p_tp = np.exp(z[0] / tp) / np.exp(z[0] / tp).sum()
    assert np.abs(freq - p_tp).max() < 0.015
    many = np.repeat(z, 3000, axis=0).astype(np.float32)
    values, indices = quantize_logits(many, "sampled", k, sample_temp=tp, seed=[7, 1])
    assert np.array_equal(values, np.take_along_axis(many, indices, axis=1))
    assert np.all(np.diff(values, axis=1) <= 0)
    for temp in (2.0, 5.0, 20.0):
        got = dense_targets(torch.from_numpy(values), torch.from_numpy(indices), "sampled", c, temp, tp).numpy()
        w = np.exp(values.astype(np.float64) * (1 / temp - 1 / tp))
        w /= w.sum(axis=1, keepdims=True)
        want = np.zeros((len(values), c))
        np.add.at(want, (np.arange(len(values))[:, None], indices), w)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
        full = np.exp(z[0] / temp) / np.exp(z[0] / temp).sum()
        assert np.abs(got.mean(axis=0) - full).max() < 0.03  # self-normalized: consistent, slightly biased at k=8


@pytest.mark.parametrize(
    ("kind", "epochs", "expected"),
    [
        # step: every 30 of 300 epochs scales to every 10 of 100; 20 * 0.7^k, floor 2
        ("step", 100, {0: 20.0, 9: 20.0, 10: 14.0, 25: 9.8, 39: 6.86, 69: 2.0 * 1.176490, 70: 2.0, 99: 2.0}),
        # cosine from 20 to 2 over epochs 0..E-1: 2 + 9 * (1 + cos(pi * e / (E - 1)))
        ("cosine", 51, {0: 20.0, 25: 11.0, 50: 2.0, 10: 2 + 9 * (1 + math.cos(math.pi * 0.2))}),
        ("reverse-step", 100, {99: 20.0, 90: 20.0, 89: 14.0, 0: 2.0}),
    ],
)
def test_dkr_schedules_at_a_non_300_epoch_count(kind: str, epochs: int, expected: dict[int, float]) -> None:
    s = TempSchedule(kind=kind)
    for epoch, t in expected.items():
        assert teacher_temperature(s, epoch, epochs) == pytest.approx(t, rel=1e-5), epoch


def test_ca_fit_is_the_brute_force_minimum_of_the_kl() -> None:
    rng = np.random.default_rng(3)
    logits = rng.normal(0, 2, (32, 7))
    noisy = logits / 0.37 + rng.normal(0, 0.5, logits.shape)  # a target near T_s = 0.37, not exactly on it
    target = np.exp(noisy - noisy.max(1, keepdims=True))
    target /= target.sum(1, keepdims=True)
    grid = np.linspace(0.01, 1.0, 100)

    def kl(t: float) -> float:  # KL(target || softmax(logits / t)), batch mean, in float64 numpy
        z = logits / t
        log_q = z - z.max(1, keepdims=True) - np.log(np.exp(z - z.max(1, keepdims=True)).sum(1, keepdims=True))
        return float((target * (np.log(np.clip(target, 1e-300, None)) - log_q)).sum(1).mean())

    best = grid[int(np.argmin([kl(t) for t in grid]))]
    got = fit_student_temperature(
        torch.from_numpy(logits).float(), torch.from_numpy(target).float(), torch.tensor(grid)
    )
    assert got == pytest.approx(best, abs=1e-6) and 0.01 < best < 1.0  # an interior minimum, not the edge


def _kl_numpy(logits: np.ndarray, target: np.ndarray, t: float) -> float:
    """KL(target || softmax(logits / t)), batch mean, in float64."""
    z = logits.astype(np.float64) / t
    log_q = z - z.max(1, keepdims=True)
    log_q -= np.log(np.exp(log_q).sum(1, keepdims=True))
    return float((target * (np.log(np.clip(target, 1e-300, None)) - log_q)).sum(1).mean())


def test_ca_refit_is_the_temperature_the_next_epoch_trains_with() -> None:
    """first-batches: after an epoch, T_s is the grid's KL minimum on the epoch's first ``keep`` batches re-run in
    eval mode (dropout off: the training-mode outputs would give another fit), and the next loss uses it."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.Dropout(0.5))
    xs = [torch.randn(16, 6) for _ in range(3)]
    with torch.no_grad():
        clean = [model[0](x) for x in xs]
    gen = torch.Generator().manual_seed(1)
    targets = [torch.softmax(c / 0.3 + 0.3 * torch.randn(c.shape, generator=gen), 1) for c in clean]
    grid = torch.linspace(0.05, 1.0, 20)
    temps = StudentTemperature(1.0, fit="first-batches", grid=grid, keep=2)
    assert temps.start_epoch(teacher_temp=6.0) == 1.0
    model.train()
    for x, target in zip(xs, targets):
        temps.observe(x, model(x), target)
    fitted = temps.refit(model)
    assert model.training  # back in the mode the loop had it in

    kept_logits = torch.cat(clean[:2]).numpy()  # eval mode: the linear layer alone
    kept_targets = torch.cat(targets[:2]).double().numpy()
    want = float(grid[int(np.argmin([_kl_numpy(kept_logits, kept_targets, float(t)) for t in grid]))])
    assert fitted == pytest.approx(want) and temps.value == pytest.approx(want) and want != 1.0
    assert temps.start_epoch(teacher_temp=4.0) == pytest.approx(want)  # a fixed-then-fitted T_s ignores T
    loss = temps.loss(clean[2], targets[2])  # the next epoch's loss, at the fitted T_s
    assert float(loss) == pytest.approx(_kl_numpy(clean[2].numpy(), targets[2].double().numpy(), want), rel=1e-5)


def test_ca_last_batch_fits_the_last_steps_training_mode_output_and_follow_takes_t() -> None:
    """last-batch: the authors fit T_s on the epoch's last step as it was trained (its logits, not a re-run);
    follow: T_s is the epoch's teacher temperature."""
    torch.manual_seed(0)
    target = torch.softmax(torch.randn(16, 5) * 3, dim=1)
    logits = torch.log(target) * 0.25  # softmax(logits / 0.25) == target
    temps = StudentTemperature(1.0, fit="last-batch", grid=torch.linspace(0.05, 1.0, 20))
    temps.start_epoch(teacher_temp=6.0)
    temps.observe(torch.randn(16, 4), torch.randn(16, 5), torch.softmax(torch.randn(16, 5), 1))
    temps.observe(torch.randn(16, 4), logits, target)
    unused = torch.nn.Linear(4, 5)  # its outputs would fit another T_s
    assert temps.refit(unused) == pytest.approx(0.25)
    assert float(temps.loss(logits, target)) == pytest.approx(0.0, abs=1e-5)

    follow = StudentTemperature(1.0, follow=True)
    assert follow.start_epoch(teacher_temp=9.8) == 9.8 and follow.refit(unused) == 9.8
    want = _kl_numpy(logits.numpy(), target.double().numpy(), 9.8)
    assert float(follow.loss(logits, target)) == pytest.approx(want, rel=1e-5)


@pytest.mark.parametrize("relative", [False, True], ids=["absolute", "relative"])
def test_8_bit_codes_round_to_the_nearest_level(relative: bool) -> None:
    """Spec 5.2: each row stores its step (float16 scale, first) and codes round((hi - v) / step); a value decodes
    within half a step of itself (nearest level), with no bias, not up to a whole step (codes rounded down)."""
    rng = np.random.default_rng(4)
    values = (rng.normal(0, 3, (64, 12)) + rng.normal(0, 5, (64, 1))).astype(np.float32)
    codec = IntCodec(bits=8, relative=relative, by_sample=False)
    data = codec.encode(values)
    decoded = codec.decode(data, 64, 12)
    step = np.frombuffer(data, "<f2", 64).astype(np.float64)[:, None]  # the row's scale, read as the spec lays it
    if relative:  # decoded logits are relative to the row maximum
        decoded = decoded + values.max(1, keepdims=True)
    err = decoded.astype(np.float64) - values
    assert np.all(np.abs(err) <= step / 2 + 1e-4 * np.abs(values) + 1e-6)
    assert abs(err.mean()) < 0.05 * step.mean()  # rounding down would shift every value by half a step on average


def test_bn_matching_loss_weighs_the_first_layer_and_both_moments() -> None:
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3),
        torch.nn.BatchNorm2d(4),
        torch.nn.ReLU(),
        torch.nn.Conv2d(4, 5, 3),
        torch.nn.BatchNorm2d(5),
    ).eval()
    x = torch.randn(6, 3, 9, 9)
    matcher = BNMatcher(net)
    net(x)
    targets = {"1": (torch.randn(4), torch.rand(4) + 0.5), "4": (torch.randn(5), torch.rand(5) + 0.5)}
    got = matcher.loss(targets, first_multiplier=10.0)
    matcher.close()

    a = net[0](x)  # the first BN layer's input
    b = net[3](net[2](net[1](a)))  # the second's

    def term(h: torch.Tensor, mu: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
        m, v = h.mean((0, 2, 3)), h.var((0, 2, 3), unbiased=False)
        return ((m - mu) ** 2).sum().sqrt() + ((v - var) ** 2).sum().sqrt()

    want = 10.0 * term(a, *targets["1"]) + term(b, *targets["4"])
    torch.testing.assert_close(got, want.detach(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(("scheme", "k"), [("mr", 3), ("ms", 4), (None, 3)])
def test_topk_quantize_and_decode_match_a_numpy_reimplementation(scheme: str | None, k: int, tmp_path: Path) -> None:
    """Full float32 logits -> `quantize` to top-k float32 values in a file -> decoded dense targets at T=3,
    against numpy on the same logits: top-k by sorting, MR softmax over the k at T (also with no scheme given:
    quantize's default is MR), MS softmax at its own T=2."""
    header = make_header(classes=12, images=10, batch_size=5, epochs=1, values="f32")
    src = write_file(tmp_path / "full.lpql", header, make_records(header, seed=5))
    out = tmp_path / "q.lpql"
    quantize_file(QuantizeConfig(labels=src, output=out, scheme=scheme, top_k=k, values="f32", ms_temp=2.0))
    with LpqlReader(src) as full, LpqlReader(out) as q:
        for bid in full.batch_ids:
            z = full.read(int(bid)).values.astype(np.float64)  # (B, C)
            top = np.argsort(-z, axis=1, kind="stable")[:, :k]
            want = np.zeros_like(z)
            if scheme in ("mr", None):
                kept = np.take_along_axis(z, top, 1) / 3.0
                p = np.exp(kept - kept.max(1, keepdims=True))
                np.put_along_axis(want, top, p / p.sum(1, keepdims=True), 1)
            else:
                p = np.exp((z - z.max(1, keepdims=True)) / 2.0)
                p /= p.sum(1, keepdims=True)
                kept = np.take_along_axis(p, top, 1)
                want += ((1 - kept.sum(1)) / (12 - k))[:, None]
                np.put_along_axis(want, top, kept, 1)
            got = record_targets(q.read(int(bid)), q.header, 3.0).numpy()
            np.testing.assert_allclose(got, want, atol=1e-6)
