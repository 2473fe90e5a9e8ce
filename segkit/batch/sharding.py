"""Split a batch deterministically across parts: case i of the sorted list goes to part i % N.

The part comes from ``--num-parts N --part-id K`` (cron jobs, SLURM arrays) or, when those
are absent, from torchrun's RANK / WORLD_SIZE environment variables.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TypeVar

from segkit.errors import UserError

T = TypeVar("T")


def resolve_part(num_parts: int | None, part_id: int | None,
                 environ: Mapping[str, str] | None = None) -> tuple[int, int]:
    """(num_parts, part_id) from the flags, else from RANK/WORLD_SIZE, else (1, 0)."""
    environ = os.environ if environ is None else environ
    if num_parts is None and part_id is None and "WORLD_SIZE" in environ and "RANK" in environ:
        try:
            num_parts, part_id = int(environ["WORLD_SIZE"]), int(environ["RANK"])
        except ValueError:
            raise UserError(f"RANK={environ['RANK']!r} / WORLD_SIZE={environ['WORLD_SIZE']!r} are not integers") from None
    if num_parts is None and part_id is not None:
        raise UserError("--part-id needs --num-parts")
    num_parts = 1 if num_parts is None else num_parts
    part_id = 0 if part_id is None else part_id
    if num_parts < 1 or not 0 <= part_id < num_parts:
        raise UserError(f"part {part_id} of {num_parts} is impossible: need num_parts >= 1 and 0 <= part_id < num_parts")
    return num_parts, part_id


def select_part(items: Sequence[T], num_parts: int, part_id: int) -> list[T]:
    """Items at positions part_id, part_id + N, part_id + 2N, ... of the (already sorted) sequence."""
    return [item for index, item in enumerate(items) if index % num_parts == part_id]


def rank_device(device: str, environ: Mapping[str, str] | None = None) -> str:
    """Under torchrun, 'auto'/'cuda' become cuda:<LOCAL_RANK> so that each rank uses its own GPU."""
    import torch

    environ = os.environ if environ is None else environ
    if device not in ("auto", "cuda") or "LOCAL_RANK" not in environ or not torch.cuda.is_available():
        return device
    return f"cuda:{int(environ['LOCAL_RANK']) % torch.cuda.device_count()}"
