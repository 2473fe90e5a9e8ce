"""Training arithmetic: float32, or autocast to bf16/fp16 where the hardware computes it fast.

`--precision auto` (default): on CUDA bf16 where supported, else fp16 with a GradScaler (as
before). On a CPU the same rule as `segkit predict`'s auto (`segkit.inference.acceleration.
cpu_auto_precision`): bf16 only where bf16 was measured harmless to a trained model's label maps
(BF16_CPU_EVIDENCE, docs/benchmarks/precision.md) and
the CPU computes it in hardware (AMX tiles or AVX512-BF16; a training step of the brain-structures
U-Nets was 1.3-1.8x faster there); float32 otherwise, so a model trained on one CPU does not
depend on that CPU's instruction set. `--precision bf16` asks for it explicitly. Autocast keeps
the weights, the optimiser state and the loss in float32; only the convolutions and matrix
products run in the lower precision.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from functools import partial

import torch

from segkit.errors import UserError
from segkit.inference.acceleration import PRECISIONS, cpu_auto_precision, cpu_auto_reason


def training_precision(requested: str, device_type: str) -> str:
    """'auto' -> bf16 on CUDA with bf16 (fp16 on older CUDA); on a CPU predict's measured rule (fp32 unless harmless)."""
    if requested not in PRECISIONS:
        raise UserError(f"--precision must be one of {', '.join(PRECISIONS)}, got {requested!r}")
    if requested == "auto":
        if device_type == "cuda":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return cpu_auto_precision()
    if requested == "fp16" and device_type != "cuda":
        raise UserError("--precision fp16 needs CUDA; use bf16 or fp32 on the CPU")
    return requested


def auto_note(device_type: str) -> str:
    """How `auto` decided, for the run's notes (schedule.json): the device, and on a CPU the measured rule."""
    return f"auto on cpu: {cpu_auto_reason()}" if device_type == "cpu" else f"auto on {device_type}"


def make_autocast(device: torch.device, precision: str) -> tuple[Callable[[], AbstractContextManager], torch.amp.GradScaler | None]:
    """Autocast context factory for a resolved precision, and the GradScaler fp16 needs."""
    if precision == "fp32":
        return nullcontext, None
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    scaler = torch.amp.GradScaler("cuda") if precision == "fp16" else None
    return partial(torch.autocast, device.type, dtype=dtype), scaler
