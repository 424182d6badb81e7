"""torchrun / DDP plumbing: process group (NCCL on GPU, gloo on CPU), rank info, small syncs."""

from __future__ import annotations

import os
from typing import Any

import torch
import torch.distributed as dist


def init_distributed() -> bool:
    """Join the process group when started by torchrun with more than one process."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    if dist.is_initialized():
        return True
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    dist.init_process_group(backend)
    return True


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank_world() -> tuple[int, int, int]:
    """(rank, world size, local rank)."""
    if is_distributed():
        return dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0))
    return 0, 1, 0


def device_for(local_rank: int) -> torch.device:
    return torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")


def gather_objects(obj: Any) -> list[Any]:
    """Every rank's ``obj`` (in rank order) on every rank; ``[obj]`` without DDP."""
    if not is_distributed():
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def all_finite(value: torch.Tensor) -> bool:
    """True when ``value`` is finite on every rank (so all ranks stop together on a NaN)."""
    flag = torch.isfinite(value.detach()).all().to(torch.float32).reshape(1)
    if is_distributed():
        if dist.get_backend() == "nccl":
            flag = flag.cuda()
        dist.all_reduce(flag, op=dist.ReduceOp.MIN)
    return bool(flag.item() > 0)


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def shutdown() -> None:
    if is_distributed():
        dist.barrier()
        dist.destroy_process_group()
