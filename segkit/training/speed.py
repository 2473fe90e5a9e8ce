"""Speed switches of a training run (layout, compilation, cuDNN autotuning): data, recorded in schedule.json.

None of them changes what is computed, only how fast. Defaults are off everywhere: on CPU
they are unmeasured or slower, and on CUDA none has been measured by segkit yet
(`scripts/gpu_check.py` measures the step-time ratios; a switch becomes a CUDA default only
once measured faster there, docs/benchmarks.md "GPU readiness"). Precision (bf16/fp16/fp32)
is chosen separately by `segkit.training.precision`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import cast

import torch

from segkit.errors import UserError
from segkit.inference.acceleration import memory_format_for
from segkit.networks.blocks.reversible import CouplingBlock

COMPILE_MODES = ("off", "network", "branches")


@dataclass(frozen=True)
class SpeedSwitches:
    """How the network runs: memory layout, torch.compile scope, cuDNN autotuner."""

    channels_last: bool = False          # channels_last(_3d) for weights and batches
    compile: str = "off"                 # off | network (whole model) | branches (each reversible F/G branch)
    cudnn_benchmark: bool = False        # torch.backends.cudnn.benchmark (CUDA only)

    def __post_init__(self) -> None:
        if self.compile not in COMPILE_MODES:
            raise UserError(f"--compile must be one of {', '.join(COMPILE_MODES)}, got {self.compile!r}")

    def to_dict(self) -> dict:
        """JSON-ready record."""
        return asdict(self)


def apply_to_model(model: torch.nn.Module, switches: SpeedSwitches, spatial_dims: int, device: torch.device
                   ) -> torch.nn.Module:
    """Set the cuDNN autotuner, the layout and in-place branch compilation on a built model (same state_dict keys)."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = switches.cudnn_benchmark
    if switches.channels_last:
        model = model.to(memory_format=memory_format_for(spatial_dims))  # type: ignore[call-overload]
    if switches.compile == "branches":
        for block in model.modules():
            if isinstance(block, CouplingBlock):
                block.f.compile()            # in place: parameters and state_dict keys stay as they are
                block.g.compile()
    return model


def compile_network(net: torch.nn.Module, switches: SpeedSwitches) -> torch.nn.Module:
    """torch.compile of the whole (possibly DDP-wrapped) network when asked."""
    return cast(torch.nn.Module, torch.compile(net)) if switches.compile == "network" else net
