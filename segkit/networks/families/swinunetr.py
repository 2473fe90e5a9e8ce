"""Swin UNETR (Hatamizadeh et al., 2022) as an optional family: MONAI's SwinUNETR, planned by a measured memory fit.

Installed with the `swin` extra (`pip install segkit-revmb[swin]`: MONAI with einops); segkit's
core never imports MONAI. This module imports it only when a swinunetr network is built or
priced; registering and listing the family works without it, and building or planning one
without MONAI ends in one UserError naming the extra.

Architecture entry (docs/networks.md, "swinunetr"):
- six stages, strides [1, 2, 2, 2, 2, 2] per axis (MONAI's patch embedding and four patch
  mergings: the patch must be a multiple of 32 per axis, `topology` below fixes it for the planner);
- `features_per_stage` = feature_size x [1, 1, 2, 4, 8, 16] (feature_size a multiple of 12);
- `blocks_per_stage` = [1, d1, d2, d3, d4, 1]: the Swin transformer blocks of the four encoder
  layers (MONAI's `depths`) between the input and bottleneck residual blocks;
- `num_heads` (four values) and `window_size` (an int or one per axis);
- `deep_supervision: false`: the network has one output (no heads at lower resolutions).

Memory: attention and MONAI's blocks are not a conv tally, so `tally` reads a measured fit
(peak = a + b x batch x voxels, `segkit.networks.measurement.memory_fit`), measured once per machine and
entry; the parameter count is exact (the network built once and counted).
"""

from __future__ import annotations

import functools
import importlib.util
import json
from collections.abc import Callable

import torch
from torch import nn

from segkit.errors import UserError
from segkit.networks.family import NetworkFamily
from segkit.networks.measurement.measure_process import measure_in_subprocess
from segkit.networks.measurement.memory_fit import cached_fit
from segkit.networks.measurement.tally import Tally

STAGES = 6
FEATURE_FACTORS = (1, 1, 2, 4, 8, 16)
DEFAULT_FEATURE_SIZE = 24          # MONAI's default (the paper's BTCV model: 48)
DEFAULT_NUM_HEADS = (3, 6, 12, 24)
DEFAULT_WINDOW_SIZE = 7
INSTALL_HINT = "network family swinunetr needs MONAI: install segkit-revmb[swin] (pip install 'segkit-revmb[swin]')"
# the two calibration patches (3D; 2D drops the first axis), 4x apart in volume. Training needs more than
# one voxel in the 1/32 bottleneck (instance norm), so the smallest trainable patch has one axis of 64.
CALIBRATION_PATCHES = ([32, 32, 64], [64, 64, 64])


def _swinunetr_class() -> type[nn.Module]:
    """MONAI's SwinUNETR class, or one UserError saying how to install it."""
    if importlib.util.find_spec("einops") is None:
        raise UserError(INSTALL_HINT)
    try:
        from monai.networks.nets import SwinUNETR
    except ImportError:
        raise UserError(INSTALL_HINT) from None
    return SwinUNETR


def swinunetr_topology(spacing: list[float], patch_size: list[int]) -> tuple[list[list[int]], list[list[int]]]:
    """The fixed topology: a full-resolution stage, then five 2x downsamplings on every axis; 3x3x3 kernels."""
    dims = len(spacing)
    return [[1] * dims] + [[2] * dims for _ in range(STAGES - 1)], [[3] * dims for _ in range(STAGES)]


def swinunetr_stage_defaults(stages: int, depth_multiplier: int) -> dict:
    """MONAI's defaults: feature size 24, two Swin blocks per layer, heads 3/6/12/24, window 7, one output."""
    return {"features_per_stage": [DEFAULT_FEATURE_SIZE * f for f in FEATURE_FACTORS],
            "blocks_per_stage": [1] + [2 * depth_multiplier] * 4 + [1],
            "decoder_blocks_per_stage": [1] * (STAGES - 1),
            "num_heads": list(DEFAULT_NUM_HEADS), "window_size": DEFAULT_WINDOW_SIZE, "deep_supervision": False}


def swinunetr_settings(arch: dict) -> dict:
    """MONAI SwinUNETR keyword arguments from an entry (ValueError naming what does not fit the design)."""
    feats, strides = arch["features_per_stage"], arch["strides"]
    dims = len(strides[0])
    if len(feats) != STAGES or strides != swinunetr_topology([1.0] * dims, [32] * dims)[0]:
        raise ValueError("swinunetr needs six stages with strides [1, 2, 2, 2, 2, 2] on every axis")
    size = feats[0]
    if size % 12 or feats != [size * f for f in FEATURE_FACTORS]:
        raise ValueError(f"swinunetr features_per_stage must be feature_size x {list(FEATURE_FACTORS)} "
                         f"with feature_size a multiple of 12, got {feats}")
    heads = arch.get("num_heads", list(DEFAULT_NUM_HEADS))
    if len(heads) != 4:
        raise ValueError(f"swinunetr num_heads needs four values, got {heads}")
    return {"feature_size": int(size), "depths": tuple(int(d) for d in arch["blocks_per_stage"][1:5]),
            "num_heads": tuple(int(h) for h in heads), "window_size": arch.get("window_size", DEFAULT_WINDOW_SIZE),
            "spatial_dims": dims}


class SwinUNETRNetwork(nn.Module):
    """MONAI's SwinUNETR under segkit's output contract: a one-element list while deep_supervision is True."""

    def __init__(self, network: nn.Module, deep_supervision: bool):
        super().__init__()
        self.network = network
        self.deep_supervision = deep_supervision

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        """Full-resolution logits (in a list with deep supervision on: the family has no lower-resolution heads)."""
        logits = self.network(x)
        return [logits] if self.deep_supervision else logits


def build_swinunetr(arch: dict, in_channels: int, num_outputs: int) -> SwinUNETRNetwork:
    """MONAI's SwinUNETR with the entry's feature size, depths, heads and window size."""
    network = _swinunetr_class()(in_channels=in_channels, out_channels=num_outputs, **swinunetr_settings(arch))
    return SwinUNETRNetwork(network, bool(arch.get("deep_supervision", False)))


@functools.lru_cache(maxsize=64)
def _parameter_count(settings_json: str, in_channels: int, num_outputs: int) -> int:
    """Exact parameter count: the network built once and counted (MONAI's constructor needs real tensors)."""
    network = _swinunetr_class()(in_channels=in_channels, out_channels=num_outputs, **json.loads(settings_json))
    return sum(p.numel() for p in network.parameters())


def parameter_count(arch: dict, in_channels: int, num_outputs: int) -> int:
    """Parameters of the network build_swinunetr makes from arch."""
    return _parameter_count(json.dumps(swinunetr_settings(arch), sort_keys=True), in_channels, num_outputs)


def _measure_peak(arch: dict, in_channels: int, num_outputs: int) -> Callable[[list[int], int], int]:
    """measure(patch, batch) -> CPU peak bytes of one SGD step above the weights, in a fresh process."""
    def measure(patch: list[int], batch: int) -> int:
        """One measurement."""
        spec = {"arch": arch, "patch_size": patch, "batch_size": batch, "in_channels": in_channels,
                "num_outputs": num_outputs, "steps": 2, "threads": torch.get_num_threads()}
        return int(measure_in_subprocess(spec)["peak_bytes"])

    return measure


def memory_fit(arch: dict, in_channels: int, num_outputs: int) -> dict:
    """The measured fit for this entry on this machine (measured now if not cached): constant and bytes per voxel."""
    settings = swinunetr_settings(arch)
    _swinunetr_class()   # one UserError naming the extra when MONAI is missing
    import monai  # the fit depends on MONAI's version

    description = {"family": "swinunetr", "settings": settings, "in_channels": in_channels,
                   "num_outputs": num_outputs, "deep_supervision": bool(arch.get("deep_supervision", False)),
                   "torch": torch.__version__, "monai": monai.__version__, "dtype": "float32", "optimizer": "sgd"}
    dims = settings["spatial_dims"]
    patches = [patch[-dims:] for patch in CALIBRATION_PATCHES]
    measure = _measure_peak(arch, in_channels, num_outputs)
    return cached_fit(description, measure, patches)


def tally_swinunetr(t: Tally, arch: dict, vox: list[int], in_channels: int, num_outputs: int) -> None:
    """The measured fit as a tally: bytes per voxel as stored fp32 elements, the constant (less SGD momentum) fixed."""
    _swinunetr_class()   # before the cached count: a missing MONAI is one UserError on every call
    parameters = parameter_count(arch, in_channels, num_outputs)
    fit = memory_fit(arch, in_channels, num_outputs)
    t.parameters += parameters
    t.store(fit["bytes_per_voxel"] / 4 * vox[0])
    # the measured constant holds the SGD momentum, which memory.estimate_peak_bytes adds as "optimizer"
    t.fixed_bytes += max(0.0, fit["constant_bytes"] - 4 * parameters)


FAMILY = NetworkFamily(
    name="swinunetr", build=build_swinunetr, stage_defaults=swinunetr_stage_defaults, tally=tally_swinunetr,
    workspace_bytes=0, description="Swin UNETR (MONAI; extra `swin`): Swin transformer encoder, conv decoder",
    topology=swinunetr_topology, measured_memory=True, onnx_dynamic_spatial=False,
    onnx_group_norm=True)
