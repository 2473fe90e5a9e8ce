"""Training arithmetic: float32, or autocast to bf16/fp16 where the hardware computes it fast.

`--precision auto` (default): on CUDA bf16 where supported, else fp16 with a GradScaler (as
before); on a CPU with hardware bf16 (AMX tiles or AVX512-BF16) bf16 autocast, which made a
training step of the brain-structures U-Nets 1.3-1.8x faster on this machine (docs/benchmarks.md);
float32 on other CPUs. Autocast keeps the weights, the optimiser state and the loss in float32;
only the convolutions and matrix products run in the lower precision.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from functools import partial

import torch

from segkit.errors import UserError
from segkit.inference.acceleration import PRECISIONS, cpu_has_fast_bf16


def training_precision(requested: str, device_type: str) -> str:
    """'auto' -> bf16 (CUDA with bf16, or a CPU with hardware bf16), fp16 on older CUDA, else fp32."""
    if requested not in PRECISIONS:
        raise UserError(f"--precision must be one of {', '.join(PRECISIONS)}, got {requested!r}")
    if requested == "auto":
        if device_type == "cuda":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return "bf16" if cpu_has_fast_bf16() else "fp32"
    if requested == "fp16" and device_type != "cuda":
        raise UserError("--precision fp16 needs CUDA; use bf16 or fp32 on the CPU")
    return requested


def make_autocast(device: torch.device, precision: str) -> tuple[Callable[[], AbstractContextManager], torch.amp.GradScaler | None]:
    """Autocast context factory for a resolved precision, and the GradScaler fp16 needs."""
    if precision == "fp32":
        return nullcontext, None
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    scaler = torch.amp.GradScaler("cuda") if precision == "fp16" else None
    return partial(torch.autocast, device.type, dtype=dtype), scaler
