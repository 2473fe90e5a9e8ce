"""DistributedDataParallel setup from torchrun's environment (nccl on GPUs, gloo on CPU)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    """This process's place in the job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Only rank 0 writes files."""
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        """True when more than one process trains."""
        return self.world_size > 1


def backend_for(device_type: str) -> str:
    """Collective backend: nccl for CUDA processes (one GPU each), gloo on CPU."""
    return "nccl" if device_type == "cuda" else "gloo"


def device_for(device_type: str, info: DistInfo) -> torch.device:
    """This process's device: cuda:LOCAL_RANK on GPUs (one per process on a node), else the CPU."""
    return torch.device(f"cuda:{info.local_rank}" if device_type == "cuda" else device_type)


def info_from_env(env: Mapping[str, str] | None = None) -> DistInfo:
    """Rank, world size and local rank from torchrun's variables (a single process without them)."""
    if env is None:
        env = os.environ
    world = int(env.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    return DistInfo(int(env["RANK"]), world, int(env.get("LOCAL_RANK", "0")))


def init_from_env(device_type: str) -> DistInfo:
    """Join the process group torchrun describes (RANK/WORLD_SIZE); a single process needs none."""
    info = info_from_env()
    if device_type == "cuda":
        torch.cuda.set_device(device_for(device_type, info))   # before nccl: each rank's collectives on its GPU
    if info.enabled and not dist.is_initialized():
        dist.init_process_group(backend_for(device_type))
    return info


def per_rank_batch_size(global_batch: int, info: DistInfo) -> int:
    """This rank's share of the global batch (the first ranks take the remainder)."""
    if global_batch < info.world_size:
        raise ValueError(f"batch size {global_batch} is smaller than the {info.world_size} processes")
    return global_batch // info.world_size + (1 if info.rank < global_batch % info.world_size else 0)


def barrier(info: DistInfo) -> None:
    """Wait for every rank (no-op when not distributed)."""
    if info.enabled:
        dist.barrier()


def all_reduce_mean(value: float, info: DistInfo) -> float:
    """Mean of a scalar over ranks."""
    if not info.enabled:
        return value
    tensor = torch.tensor([value], dtype=torch.float64)
    if dist.get_backend() == "nccl":
        tensor = tensor.cuda()
    dist.all_reduce(tensor)
    return float(tensor.item()) / info.world_size


def wrap_model(model: torch.nn.Module, info: DistInfo, device: torch.device) -> torch.nn.Module:
    """DistributedDataParallel around the model when distributed."""
    if not info.enabled:
        return model
    ids = [device.index] if device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)


def cleanup(info: DistInfo) -> None:
    """Leave the process group."""
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()


def broadcast_ints(values: list[int], info: DistInfo) -> list[int]:
    """Rank 0's values on every rank (so all ranks follow one schedule / one stop decision)."""
    if not info.enabled:
        return values
    tensor = torch.tensor(values, dtype=torch.int64)
    if dist.get_backend() == "nccl":
        tensor = tensor.cuda()
    dist.broadcast(tensor, 0)
    return [int(v) for v in tensor.cpu()]


def all_reduce_sum(tensor: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Sum of a CPU tensor over ranks."""
    if not info.enabled:
        return tensor
    work = tensor.cuda() if dist.get_backend() == "nccl" else tensor.clone()
    dist.all_reduce(work)
    return work.cpu()
