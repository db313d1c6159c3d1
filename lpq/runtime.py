"""Where work runs: the device (CUDA when present), its precision, and the torch.distributed process group.

`lpq` never schedules processes itself: ``torchrun --nproc-per-node N -m lpq CMD`` starts them and sets
WORLD_SIZE/RANK; commands that can share work call ``init_distributed`` and split it by rank.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch


def pick_device(name: str, rank: int = 0) -> torch.device:
    """``auto`` is CUDA when present (one GPU per local rank), else CPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda" and device.index is None and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", rank)) % torch.cuda.device_count())
    return device


def init_distributed() -> tuple[int, int]:
    """(rank, world size): (0, 1) outside torchrun; otherwise joins the group (``backend()``)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return 0, 1
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group(backend())
    return dist.get_rank(), dist.get_world_size()


def backend() -> str:
    """NCCL when every local rank has a GPU of its own; gloo on CPU, and when ranks share a GPU (NCCL refuses
    two ranks on one device; small models, as a ConvNet's synthesis, run several processes per GPU)."""
    local = int(os.environ.get("LOCAL_WORLD_SIZE", os.environ.get("WORLD_SIZE", "1")))
    return "nccl" if torch.cuda.is_available() and torch.cuda.device_count() >= local else "gloo"


def rank_range(n: int, rank: int, world: int) -> range:
    """Rank ``rank``'s contiguous share of ``n`` items (sizes differ by at most one): shards of a split stay
    together, so each rank reads its own files."""
    return range(n * rank // world, n * (rank + 1) // world)


def all_sum(t: torch.Tensor, world: int) -> torch.Tensor:
    """``t`` summed over ranks, in place (itself outside torchrun)."""
    if world > 1:
        import torch.distributed as dist

        dist.all_reduce(t)
    return t


def broadcast(array: np.ndarray, world: int, device: torch.device) -> np.ndarray:
    """Rank 0's ``array`` on every rank (each passes one of the same shape): what one rank chose and all share."""
    if world == 1:
        return array
    import torch.distributed as dist

    t = torch.from_numpy(np.ascontiguousarray(array)).to(device)
    dist.broadcast(t, src=0)
    return t.cpu().numpy()


def broadcast_text(text: str, world: int, device: torch.device) -> str:
    """Rank 0's ``text`` on every rank (the others pass anything): a choice one rank made, sent as bytes, its
    length first (never pickled)."""
    if world == 1:
        return text
    data = np.frombuffer(text.encode(), np.uint8)
    n = int(broadcast(np.array([len(data)], np.int64), world, device)[0])
    return bytes(broadcast(data if len(data) == n else np.zeros(n, np.uint8), world, device)).decode()


def barrier(world: int) -> None:
    if world > 1:
        import torch.distributed as dist

        dist.barrier()


@dataclass(frozen=True)
class Precision:
    """How a stage runs its model on a device: autocast to bfloat16 or float16 (None: float32), a loss scaler
    for float16 training, and channels-last memory: convolutions run faster in it on CUDA and, through oneDNN,
    on CPU too (x1.2-1.5 for ConvNet and ResNet-18 in training, relabel and synthesis; benchmarks/memory_format.py).

    ``auto`` is float32 on CPU, where autocast is slower. On CUDA it is bfloat16 for stages that train
    (float32's range, so gradients need no scaling) and float16 for a forward whose outputs are the product
    (relabel): no gradients to underflow, and 3 more mantissa bits. On a 200-class teacher under CutMix,
    bfloat16 changed the top-1 class of 1.9% of samples (near-ties; benchmarks/precision.py), float16 of 0.2%.
    """

    device: torch.device
    dtype: torch.dtype | None

    @classmethod
    def choose(cls, amp: str, device: torch.device, inference: bool = False) -> Precision:
        if amp == "auto":
            if device.type != "cuda":
                return cls(device, None)
            if inference:
                return cls(device, torch.float16)
            return cls(device, torch.bfloat16 if torch.cuda.is_bf16_supported() else None)
        return cls(device, {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}[amp])

    @property
    def name(self) -> str:
        return {None: "float32", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.dtype]

    def autocast(self) -> torch.autocast:
        return torch.autocast(self.device.type, dtype=self.dtype, enabled=self.dtype is not None)

    def scaler(self) -> torch.amp.GradScaler:
        """Loss scaling, active for float16 only (bfloat16 has float32's range)."""
        return torch.amp.GradScaler(self.device.type, enabled=self.dtype == torch.float16)

    memory_format = torch.channels_last

    def model(self, net: torch.nn.Module) -> torch.nn.Module:
        return net.to(self.device, memory_format=self.memory_format)

    def inputs(self, x: torch.Tensor) -> torch.Tensor:
        """A batch on the device (asynchronously from pinned memory) in the model's memory format."""
        return x.to(self.device, non_blocking=True, memory_format=self.memory_format)

    def forward(self, net: torch.nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
        """``net`` on a batch as this precision runs it (on the device, under autocast), its output in float32."""

        def run(x: torch.Tensor) -> torch.Tensor:
            with self.autocast():
                return net(self.inputs(x)).float()

        return run
