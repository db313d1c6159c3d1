"""Class-wise image synthesis (LPQLD stage 2): one step loop that turns noise (or real images) into distilled images.

Each step: a random roll (jitter), one RandomResizedCrop and flip for the whole batch, the teacher's forward;
loss = cross-entropy on the images' classes + r_bn * `BNMatcher.loss` against the targets (a class's recorded
statistics, or the teacher's running statistics for the SRe2L baseline); Adam (betas 0.5, 0.9) on the pixels in
the teacher's normalized space, cosine decay, pixels clipped to [0, 1] after every step, as the authors' recover
loop. `lpq synth` runs it per class (or mixed batch); a loop of your own can call `optimize_images` directly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from lpq.artifacts.teacher import Teacher
from lpq.method.bn import BNMatcher
from lpq.models import bn_layers
from lpq.runtime import Precision

BNTargets = dict[str, tuple[torch.Tensor, torch.Tensor]]  # BN layer name -> (mean, variance) to match


@dataclass(frozen=True)
class SynthesisSteps:
    """The step loop's settings, all given (`lpq synth` fills them from its config: lpq.stages.synth.synthesis_steps;
    the defaults are lpq.configs.synth's)."""

    iterations: int
    lr: float
    r_bn: float
    jitter: int
    crop_scale: tuple[float, float]
    first_bn_multiplier: float


def bn_targets(teacher: Teacher, labels: list[int], batching: str) -> BNTargets:
    """What a group's images match: their class's recorded statistics (class-wise: one class per group), or the
    teacher's running statistics (mixed batches, the SRe2L baseline)."""
    if batching == "mixed":
        return {n: (m.running_mean.float(), m.running_var.float()) for n, m in bn_layers(teacher.model).items()}
    c = labels[0]
    return {n: (s.mean[c].float(), s.var[c].float()) for n, s in teacher.stats.items()}


def augment(x: torch.Tensor, gen: torch.Generator, jitter: int, scale: tuple[float, float]) -> torch.Tensor:
    """Random roll, then one RandomResizedCrop and flip for the whole batch (as the authors' recover loop)."""
    s = x.shape[-1]
    dy, dx = (int(v) for v in torch.randint(-jitter, jitter + 1, (2,), generator=gen))
    x = torch.roll(x, shifts=(dy, dx), dims=(2, 3))
    area = s * s * float(torch.empty(1).uniform_(scale[0], scale[1], generator=gen))
    ratio = math.exp(float(torch.empty(1).uniform_(math.log(3 / 4), math.log(4 / 3), generator=gen)))
    w = min(s, max(1, round(math.sqrt(area * ratio))))
    h = min(s, max(1, round(math.sqrt(area / ratio))))
    top = int(torch.randint(0, s - h + 1, (1,), generator=gen))
    left = int(torch.randint(0, s - w + 1, (1,), generator=gen))
    x = F.interpolate(x[:, :, top : top + h, left : left + w], size=(s, s), mode="bilinear", align_corners=False)
    if bool(torch.rand(1, generator=gen) < 0.5):
        x = x.flip(-1)
    return x


def optimize_images(
    teacher: Teacher,
    labels: torch.Tensor,
    targets: BNTargets,
    steps: SynthesisSteps,
    gen: torch.Generator,
    precision: Precision,
    init: torch.Tensor | None = None,
) -> tuple[torch.Tensor, float, float]:
    """Images in [0, 1] for ``labels`` (B,), optimized against BN ``targets``; returns images and final losses.

    ``init`` (B, 3, S, S) uint8 real images to start from; Gaussian noise in the normalized space otherwise.
    """
    model, device = teacher.model, precision.device
    s = teacher.meta.image_size
    mean = torch.tensor(teacher.meta.mean, device=device).view(1, 3, 1, 1)
    std = torch.tensor(teacher.meta.std, device=device).view(1, 3, 1, 1)
    lo, hi = -mean / std, (1 - mean) / std  # [0, 1] in the teacher's normalized space
    if init is None:
        start = torch.randn(len(labels), 3, s, s, generator=gen).to(device)
    else:
        start = (init.to(device).float() / 255 - mean) / std
    x = start.contiguous(memory_format=precision.memory_format).requires_grad_(True)
    opt = torch.optim.Adam([x], lr=steps.lr, betas=(0.5, 0.9))
    scaler = precision.scaler()
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps.iterations)
    matcher = BNMatcher(model)
    labels = labels.to(device)
    targets = {k: (m.to(device), v.to(device)) for k, (m, v) in targets.items()}
    ce = bn = torch.zeros(())
    try:
        for _ in range(steps.iterations):
            with precision.autocast():
                logits = model(augment(x, gen, steps.jitter, steps.crop_scale))
            ce = F.cross_entropy(logits.float(), labels)
            bn = matcher.loss(targets, steps.first_bn_multiplier)
            loss = ce + steps.r_bn * bn
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            sched.step()
            with torch.no_grad():
                x.clamp_(lo, hi)  # pixels stay in [0, 1]
    finally:
        matcher.close()
    return (x.detach() * std + mean).clamp(0, 1).cpu(), ce.item(), bn.item()
