"""Multi-process training through PyTorch's own engine (DDP), started by torchrun.

    torchrun --nproc_per_node=4 -m facevae train --data CACHE ...

torchrun sets RANK, WORLD_SIZE and LOCAL_RANK; without them this is one process and every
helper here is a no-op. Backend: NCCL for CUDA, gloo otherwise. Rank 0 alone logs, draws
progress bars and writes files; every rank trains on its own shard of each epoch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistributedContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def context_from_env() -> DistributedContext:
    """The process's place in a torchrun job (rank 0 of 1 when not launched by torchrun)."""
    return DistributedContext(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                              int(os.environ.get("LOCAL_RANK", 0)))


def init(context: DistributedContext, device: torch.device) -> torch.device:
    """Join the process group (if distributed) and return this rank's device.

    With CUDA each rank takes the GPU cuda:LOCAL_RANK.
    """
    if device.type == "cuda" and context.enabled:
        device = torch.device("cuda", context.local_rank)
        torch.cuda.set_device(device)
    if context.enabled and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend, rank=context.rank, world_size=context.world_size,
                                device_id=device if device.type == "cuda" else None)
    return device


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum a tensor over all ranks in place (identity when not distributed)."""
    if dist.is_initialized():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def any_rank(flag: bool, device: torch.device) -> bool:
    """True on every rank when it is true on at least one (e.g. 'stop now')."""
    if not dist.is_initialized():
        return flag
    tensor = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return bool(tensor.item() > 0)
