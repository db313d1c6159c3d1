"""BatchNorm statistics matching, the synthesis loss of SRe2L and LPQLD's class-wise recover stage.

Forward pre-hooks on every BN layer collect the batch mean and (biased) variance of the layer's input;
``BNMatcher.loss`` is sum over layers of ||mu_batch - mu_target||_2 + ||var_batch - var_target||_2, the first
layer's term times a multiplier (10 in the authors' code). The targets are the teacher's per-class statistics
(class-wise) or its running statistics (the SRe2L baseline).
"""

from __future__ import annotations

import torch
from torch import nn

from lpq.models import bn_layers


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
