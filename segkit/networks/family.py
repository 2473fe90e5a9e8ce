"""NetworkFamily: everything segkit knows about one network family, in one record.

Each family module (segkit/networks/families/: unet.py, resenc.py, revmbconv.py, ...) defines its builder, the
per-stage defaults the planner starts from, its memory tally and a `FAMILY` record pointing at
them; `segkit.networks.registry` registers the records. The planner, the memory model, the
hardware fit, bench-memory and the CLI read the registry, never a family name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import nn

    from segkit.networks.measurement.tally import Tally


def same_architecture(arch: dict, mode: str) -> dict:
    """with_mode for families with a single execution mode: the entry itself."""
    return arch


def plain_mode(arch: dict) -> str:
    """execution_mode for families with a single execution mode."""
    return "plain"


@dataclass(frozen=True)
class NetworkFamily:
    """A network family: builder, planner defaults, memory tally, architecture keys and execution modes."""

    name: str
    # (architecture entry, in_channels, num_outputs) -> nn.Module
    build: Callable[[dict, int, int], nn.Module]
    # (number of stages, depth multiplier) -> blocks_per_stage, decoder_blocks_per_stage and the family's own keys
    stage_defaults: Callable[[int, int], dict]
    # (tally, architecture entry, voxels per stage, in_channels, num_outputs): add every layer's parameters,
    # stored activations and transients, mirroring `build` (checked against autograd in the memory tests)
    tally: Callable[[Tally, dict, list[int], int, int], None]
    # runtime working memory that does not scale with patch, depth or width (kernels' scratch, allocator slack)
    workspace_bytes: int
    description: str = ""
    # lists in the entry with one value per stage beyond the common ones (validated, cut with the stage)
    stage_keys: tuple[str, ...] = ()
    # ways one entry can run (same parameters), e.g. reversible / plain / checkpoint; bench-memory measures them
    execution_modes: tuple[str, ...] = ("plain",)
    # the modes the memory trade-off table compares
    compared_modes: tuple[str, ...] = ("plain",)
    with_mode: Callable[[dict, str], dict] = same_architecture
    execution_mode: Callable[[dict], str] = plain_mode
    # whether the planner spends leftover memory on depth and width for this family
    grows: bool = False
    # weight initialisation when an entry has no "init" key (segkit.networks.blocks.init.INIT_SCHEMES)
    default_init: str = "pytorch"
    # registered families this one stands for, smallest first (stunet: stunet-s ... stunet-h): the planner
    # fixes the patch with the first and plans the largest one that fits the budget at that patch
    presets: tuple[str, ...] = ()
    # (spacing, patch size) -> (strides, kernel_sizes) for a family whose design fixes its topology
    # (swinunetr: five 2x downsamplings); None = the planner's rule (segkit.planning.topology.plan_topology)
    topology: Callable[[list[float], list[int]], tuple[list[list[int]], list[list[int]]]] | None = None
    # the memory model is a fit measured per entry (swinunetr): the trade-off table's depth and width searches
    # (a new entry, so a new measurement, per candidate) are skipped for it
    measured_memory: bool = False
    # whether the traced network takes any multiple of the strides (ONNX export with dynamic spatial axes); False
    # where tracing bakes the patch's shape into the graph (swinunetr: MONAI's window partition), so the export
    # keeps the patch fixed and only the batch dynamic
    onnx_dynamic_spatial: bool = True
    # whether the ONNX export replaces instance norms by GroupNorm(C, C), the same operation: torch's exporter
    # needs a static channel count for instance norm, which MONAI's Swin blocks (reshapes to -1 channels after
    # a shifted window) leave unknown; its group norm decomposition has the count in its weights
    onnx_group_norm: bool = False
