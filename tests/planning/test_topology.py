"""Network topology: strides and kernels per stage from spacing and patch, and patches fitted to the topology."""

from __future__ import annotations

from segkit.planning.topology import fit_patch_to_topology, plan_topology


def test_topology_waits_for_coarse_axis_and_uses_in_plane_kernels() -> None:
    topology = plan_topology([4.0, 1.0, 1.0], [32, 128, 128])
    assert topology.kernel_sizes[0] == [1, 3, 3]
    assert topology.strides[1] == [1, 2, 2]          # 4 mm is over 2 x 1 mm: z waits
    assert topology.kernel_sizes[1] == [3, 3, 3]     # now 4 mm vs 2 mm: caught up
    assert topology.strides[2] == [2, 2, 2]
    final = [n // d for n, d in zip([32, 128, 128], topology.divisor)]
    assert min(final) >= 4


def test_fit_patch_is_divisible_and_not_larger() -> None:
    patch, topology = fit_patch_to_topology([37, 150, 141], [3.0, 0.8, 0.8])
    assert all(p % d == 0 for p, d in zip(patch, topology.divisor))
    assert all(p <= q for p, q in zip(patch, [37, 150, 141]))
