"""Where work runs: the device (CUDA when present) and the torch.distributed process group under torchrun.

`lpq` never schedules processes itself: ``torchrun --nproc-per-node N -m lpq CMD`` starts them and sets
WORLD_SIZE/RANK; commands that can share work call ``init_distributed`` and split it by rank.
"""

from __future__ import annotations

import os

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
    """(rank, world size): (0, 1) outside torchrun; otherwise joins the group (NCCL on GPU, gloo on CPU)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return 0, 1
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return dist.get_rank(), dist.get_world_size()


def barrier(world: int) -> None:
    if world > 1:
        import torch.distributed as dist

        dist.barrier()
