"""BatchNorm statistics matching, the synthesis loss of SRe2L and LPQLD's class-wise recover stage, and the
teacher's per-class statistics it matches (LPQLD stage 1, recorded by `lpq squeeze`).

Forward pre-hooks on every BN layer collect the batch mean and (biased) variance of the layer's input;
``BNMatcher.loss`` is sum over layers of ||mu_batch - mu_target||_2 + ||var_batch - var_target||_2, the first
layer's term times a multiplier (10 in the authors' code). The targets are the teacher's per-class statistics
(class-wise) or its running statistics (the SRe2L baseline). ``record_class_stats`` gathers the per-class
mean and (biased) variance of every BN layer's input over real images, in float64 sums.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch
from torch import nn

from lpq.artifacts.teacher import ClassStats
from lpq.models import bn_layers, require_bn
from lpq.progress import Show, progress
from lpq.runtime import Precision, all_sum


class ChannelMoments(torch.autograd.Function):
    """Per-channel batch mean and (biased) variance of an (N, C, ...) activation.

    ``torch.var_mean`` over the batch and spatial dimensions is a strided Welford reduction that costs
    more than the convolution producing its input on CPU, and its autograd backward spends several
    full-size kernels. Here: an exact two-pass forward (mean, then mean of squared deviations), and the
    closed-form gradient d/dx = (g_mean + 2 g_var (x - mean)) / n as one fused multiply-add.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        ctx.dtype = x.dtype
        x = x.to(torch.promote_types(x.dtype, torch.float32))  # at least float32 under bfloat16/float16 autocast
        dims = [0, *range(2, x.dim())]
        shape = (1, -1) + (1,) * (x.dim() - 2)
        mean = x.mean(dims)
        var = (x - mean.view(shape)).square_().mean(dims)
        ctx.save_for_backward(x, mean)
        ctx.shape = shape
        return mean, var

    @staticmethod
    def backward(ctx, g_mean: torch.Tensor, g_var: torch.Tensor) -> torch.Tensor:
        x, mean = ctx.saved_tensors
        n = x.numel() // x.shape[1]
        slope = 2 * g_var / n
        offset = g_mean / n - slope * mean
        return torch.addcmul(offset.view(ctx.shape), x, slope.view(ctx.shape)).to(ctx.dtype)


class BNMatcher:
    """Forward hooks that collect each BN layer's batch statistics and score them against targets."""

    def __init__(self, model: nn.Module) -> None:
        self.layers = bn_layers(model)
        self.batch: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self._handles = [m.register_forward_pre_hook(self._hook(n)) for n, m in self.layers.items()]

    def _hook(self, name: str):
        def hook(_m: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
            self.batch[name] = ChannelMoments.apply(inputs[0])

        return hook

    def loss(self, targets: dict[str, tuple[torch.Tensor, torch.Tensor]], first_multiplier: float) -> torch.Tensor:
        total = torch.zeros(())
        for i, (name, (mu, var)) in enumerate(self.batch.items()):
            t_mu, t_var = targets[name]
            term = torch.norm(mu - t_mu, 2) + torch.norm(var - t_var, 2)
            total = total + (first_multiplier if i == 0 else 1.0) * term
        return total

    def close(self) -> None:
        for h in self._handles:
            h.remove()


class ClassStatsRecorder:
    """Forward pre-hooks that add each BatchNorm input into per-class float64 sums while attached."""

    def __init__(self, model: nn.Module, num_classes: int) -> None:
        self.layers = require_bn(model)
        self.num_classes = num_classes
        self.labels: torch.Tensor | None = None
        self.sums: dict[str, list[torch.Tensor]] = {}
        self._handles = [m.register_forward_pre_hook(self._hook(n)) for n, m in self.layers.items()]

    def _hook(self, name: str) -> Callable[[nn.Module, tuple[torch.Tensor, ...]], None]:
        def hook(_module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
            x = inputs[0]
            dims = tuple(range(2, x.dim()))
            positions = math.prod(x.shape[2:]) if x.dim() > 2 else 1
            s1 = (x.sum(dim=dims) if dims else x).double()  # (B, C)
            s2 = ((x * x).sum(dim=dims) if dims else x * x).double()
            if name not in self.sums:
                shape = (self.num_classes, x.shape[1])
                self.sums[name] = [torch.zeros(shape, dtype=torch.float64, device=x.device) for _ in range(2)]
                self.sums[name].append(torch.zeros(self.num_classes, dtype=torch.float64, device=x.device))
            acc = self.sums[name]
            if self.labels is None:
                raise RuntimeError("ClassStatsRecorder.labels must be set before each forward pass")
            acc[0].index_add_(0, self.labels, s1)
            acc[1].index_add_(0, self.labels, s2)
            acc[2].index_add_(0, self.labels, torch.full_like(self.labels, positions, dtype=torch.float64))

        return hook

    def result(self) -> dict[str, ClassStats]:
        out = {}
        for name, (s1, s2, n) in self.sums.items():
            mean = s1 / n[:, None]
            out[name] = ClassStats(mean.cpu(), (s2 / n[:, None] - mean * mean).clamp(min=0).cpu(), n.cpu())
        return out

    def close(self) -> None:
        for h in self._handles:
            h.remove()


@torch.no_grad()
def record_class_stats(
    model: nn.Module,
    data: Iterable[tuple[torch.Tensor, torch.Tensor]],
    num_classes: int,
    precision: Precision,
    total: int = 0,
    show: bool | Show = False,
    world: int = 1,
) -> dict[str, ClassStats]:
    """Per-class statistics of every BatchNorm input over (normalized inputs, labels) batches; under torchrun
    each rank passes its share and the float64 sums are added over ranks before the means are taken."""
    model.eval()
    rec = ClassStatsRecorder(model, num_classes)
    try:
        with progress(show) as bar:
            task = bar.add_task("class BN statistics", total=total or None, info="")
            for x, y in data:
                rec.labels = y.to(precision.device)
                with precision.autocast():
                    model(precision.inputs(x))
                bar.update(task, advance=len(y))
    finally:
        rec.close()
    for sums in rec.sums.values():
        for t in sums:
            all_sum(t, world)
    return rec.result()
