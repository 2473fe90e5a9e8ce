"""U-Net topology from spacing and patch size: pooling per axis, kernel sizes, features.

Rules (documented in docs/planning.md):
- an axis is pooled only while its feature map stays >= MIN_FEATURE_MAP voxels after pooling,
  and only when its current spacing is at most twice the finest current spacing, so a
  coarse axis waits until the finer ones catch up;
- a kernel is 1 along an axis whose spacing is more than twice the finest (the in-plane
  context would be spread over too many millimetres), 3 once it has caught up (and stays 3);
- features start at BASE_FEATURES and double per stage up to a cap (320 in 3D, 512 in 2D).
"""

from __future__ import annotations

from dataclasses import dataclass

from segkit.networks.registry import get_family
from segkit.plans import stride_product

MIN_FEATURE_MAP = 4
BASE_FEATURES = 32
MAX_FEATURES = {2: 512, 3: 320}
MAX_STAGES = {2: 8, 3: 7}
ANISOTROPY_RATIO = 2.0


@dataclass(frozen=True)
class Topology:
    """Strides and kernels per stage, and the divisor each patch axis must honour."""

    strides: list[list[int]]
    kernel_sizes: list[list[int]]

    @property
    def num_stages(self) -> int:
        """Number of resolution stages (encoder depth)."""
        return len(self.strides)

    @property
    def divisor(self) -> list[int]:
        """Product of strides per axis: each patch axis must be a multiple of it."""
        return stride_product(self.strides)


def plan_topology(spacing: list[float], patch_size: list[int]) -> Topology:
    """Pooling and kernel sizes per stage for a patch at a spacing (array order)."""
    dims = len(spacing)
    current_spacing = list(map(float, spacing))
    current_size = list(map(int, patch_size))
    kernel_fixed = [False] * dims
    strides = [[1] * dims]
    kernels = [[_kernel(axis, current_spacing, kernel_fixed) for axis in range(dims)]]
    while len(strides) < MAX_STAGES[dims]:
        finest = min(current_spacing)
        stride = [2 if current_size[a] // 2 >= MIN_FEATURE_MAP and current_spacing[a] <= ANISOTROPY_RATIO * finest
                  else 1 for a in range(dims)]
        if max(stride) == 1:
            break
        for axis in range(dims):
            current_spacing[axis] *= stride[axis]
            current_size[axis] //= stride[axis]
        strides.append(stride)
        kernels.append([_kernel(axis, current_spacing, kernel_fixed) for axis in range(dims)])
    return Topology(strides, kernels)


def _kernel(axis: int, spacing: list[float], kernel_fixed: list[bool]) -> int:
    """Kernel size along an axis: 1 while it is far coarser than the finest axis, then 3 for good."""
    if kernel_fixed[axis] or spacing[axis] <= ANISOTROPY_RATIO * min(spacing):
        kernel_fixed[axis] = True
        return 3
    return 1


def features_per_stage(num_stages: int, dims: int, base: int = BASE_FEATURES) -> list[int]:
    """Feature counts doubling per stage up to the dimension's cap."""
    return [min(base * 2 ** stage, MAX_FEATURES[dims]) for stage in range(num_stages)]


def fit_patch_to_topology(patch_size: list[int], spacing: list[float]) -> tuple[list[int], Topology]:
    """Round a patch to the divisors its own topology needs (down where possible, never below one step)."""
    topology = plan_topology(spacing, patch_size)
    for _ in range(4):
        divisor = topology.divisor
        fitted = [max(d, (p // d) * d) for p, d in zip(patch_size, divisor)]
        new_topology = plan_topology(spacing, fitted)
        if new_topology == topology:
            return fitted, topology
        topology, patch_size = new_topology, fitted
    return [max(d, (p // d) * d) for p, d in zip(patch_size, topology.divisor)], topology


def fit_patch_for_family(patch_size: list[int], spacing: list[float], family: str) -> tuple[list[int], Topology]:
    """fit_patch_to_topology, or for a family with its own fixed topology that one, the patch rounded down to its
    divisor (at least two bottleneck voxels: one divisor per axis, two along the finest)."""
    rule = get_family(family).topology
    if rule is None:
        return fit_patch_to_topology(patch_size, spacing)
    strides, kernels = rule(list(map(float, spacing)), list(map(int, patch_size)))
    topology = Topology(strides, kernels)
    fitted = [max(d, (p // d) * d) for p, d in zip(patch_size, topology.divisor)]
    if all(p == d for p, d in zip(fitted, topology.divisor)):
        # instance norm needs more than one bottleneck voxel in training: two divisors along the finest axis
        finest = min(range(len(spacing)), key=lambda axis: (spacing[axis], -axis))
        fitted[finest] *= 2
    return fitted, topology
