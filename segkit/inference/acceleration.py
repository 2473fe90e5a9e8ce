"""Make a trained network fast for inference without changing what it computes.

- InstanceNorm (affine, no running statistics) becomes GroupNorm with one group per channel:
  the same operation with the same parameters (state_dict keys unchanged), but PyTorch's
  CPU GroupNorm kernel is several times faster than InstanceNorm's batch-norm reshaping,
  and on CUDA it keeps the channels-last layout.
- Weights and inputs go channels-last (NDHWC), the layout oneDNN (CPU) and cuDNN convolve
  fastest; batches of >= 2 tiles also keep every CPU convolution on oneDNN.
- Reduced precision through autocast (convolutions in bf16/fp16, logits accumulated in
  float32): `auto` picks fp16 on CUDA (as nnU-Net does). On a CPU it picks bf16 only where bf16
  was measured harmless to what a trained model segments (BF16_CPU_EVIDENCE against
  BF16_HARMLESS) and the CPU computes bf16 in hardware (AMX or AVX512-BF16); otherwise fp32, so
  the same model writes the same label map on every CPU (docs/benchmarks/precision.md;
  `scripts/bench_precision.py` measures it). `segkit train --precision auto` follows the same rule
  on a CPU (`cpu_auto_precision`).
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from segkit.networks.blocks.layers import instance_norms_to_group_norms

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
# What "harmless" means for auto to pick bf16 on a CPU: on every measured prediction of a trained
# model, the mean Dice moves by at most this much and the foreground masks agree at least this much.
BF16_HARMLESS = {"max_abs_dice_difference": 0.001, "min_foreground_agreement": 0.999}
# The worst case measured by scripts/bench_precision.py (trained real-data models, fp32 vs bf16 predict,
# docs/benchmarks.md): auto follows it. Re-measure and update it together with the table.
# 2026-12-07 (docs/benchmarks/precision.md): two trained real-data models (600 steps, held-out Dice 0.74-0.76;
# 300 steps, 0.36-0.45), 6 predictions: Dice moved by at most 0.0006, the foreground masks agreed down to
# 0.9989 (22-695 voxels differ per case): the agreement bound fails by 0.0001, so auto stays fp32.
BF16_CPU_EVIDENCE: dict[str, float | None] = {"max_abs_dice_difference": 0.0006, "min_foreground_agreement": 0.9989}
BF16_CPU_EVIDENCE_SOURCE = "docs/benchmarks/precision.md, bf16 vs fp32 inference on trained real-data models"


def instance_to_group_norm(network: nn.Module) -> int:
    """Replace affine InstanceNorm1/2/3d modules by equivalent GroupNorm(C, C) in place; return the count."""
    return instance_norms_to_group_norms(network)


def memory_format_for(spatial_dims: int) -> torch.memory_format:
    """channels_last_3d for 3D networks, channels_last for 2D ones."""
    return torch.channels_last_3d if spatial_dims == 3 else torch.channels_last


def prepare_for_inference(network: nn.Module, spatial_dims: int, channels_last: bool = True) -> nn.Module:
    """Eval mode, GroupNorm instead of InstanceNorm, channels-last weights (in place; returns the network)."""
    network.eval()
    instance_to_group_norm(network)
    if channels_last:
        network.to(memory_format=memory_format_for(spatial_dims))  # type: ignore[call-overload]  # accepted at run time; the stub omits it
    return network


def cpu_has_fast_bf16() -> bool:
    """True when this CPU computes bf16 in hardware (AMX tiles or AVX512-BF16) and oneDNN is present."""
    checks = [getattr(torch.cpu, name, None) for name in ("_is_amx_tile_supported", "_is_avx512_bf16_supported")]
    try:
        return torch.backends.mkldnn.is_available() and any(check() for check in checks if check is not None)
    except RuntimeError:
        return False


def bf16_measured_harmless(evidence: dict[str, float | None] | None = None) -> bool:
    """True when the measured bf16-vs-fp32 worst case (BF16_CPU_EVIDENCE) is within BF16_HARMLESS."""
    evidence = BF16_CPU_EVIDENCE if evidence is None else evidence
    dice, agreement = evidence.get("max_abs_dice_difference"), evidence.get("min_foreground_agreement")
    if dice is None or agreement is None:   # not measured: not harmless
        return False
    return dice <= BF16_HARMLESS["max_abs_dice_difference"] and agreement >= BF16_HARMLESS["min_foreground_agreement"]


def cpu_auto_precision() -> str:
    """What `auto` means on a CPU, for predict and train alike: bf16 only where measured harmless and fast, else fp32."""
    return "bf16" if cpu_has_fast_bf16() and bf16_measured_harmless() else "fp32"


def cpu_auto_reason() -> str:
    """Why `auto` chose what it did on this CPU (for the run's notes)."""
    if not bf16_measured_harmless():
        return "bf16 not measured harmless to a trained model's labels (BF16_CPU_EVIDENCE)"
    return "bf16 measured harmless" + ("" if cpu_has_fast_bf16() else ", but this CPU has no hardware bf16")


def resolve_precision(precision: str, device: torch.device) -> str:
    """'auto' -> fp16 on CUDA (as nnU-Net); on a CPU bf16 only where measured harmless and fast, else fp32."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "auto":
        if device.type == "cuda":
            return "fp16"
        return cpu_auto_precision() if device.type == "cpu" else "fp32"
    return precision


def autocast_for(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """An autocast context for bf16/fp16, or a no-op for fp32."""
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device.type, dtype=dtype)
