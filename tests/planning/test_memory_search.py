"""Budget searches: the largest patch, deepest and widest entries that fit, reversible vs plain; nothing when nothing fits."""

from __future__ import annotations

import pytest
from network_data import memory_arch_for as arch_for

from segkit.planning.memory import estimate_peak_bytes
from segkit.planning.memory_search import format_tradeoff_table, search_configuration, tradeoff_rows, tradeoff_table
from segkit.plans import Configuration, total_strides

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_searches_fit_the_budget_and_favour_reversible() -> None:
    """Found configurations fit; the next larger patch does not; reversible gets more of everything."""
    arch = {**arch_for("revmbconv"), "blocks_per_stage": [4, 4, 4], "decoder_blocks_per_stage": [4, 4]}
    budget = 256 * 2 ** 20
    found = search_configuration(budget, arch, [40, 160, 160], [8, 32, 32], 2, 1, 3)
    rev, plain = found["reversible"], found["plain"]
    assert rev["largest_patch_voxels"] > 2 * plain["largest_patch_voxels"]
    for mode, row in found.items():
        variant = {**arch, "reversible": mode == "reversible"}
        assert estimate_peak_bytes(variant, row["largest_patch"], 2, 1, 3)["total"] <= budget
        bigger = [p + d for p, d in zip(row["largest_patch"], total_strides(arch))]
        assert estimate_peak_bytes(variant, bigger, 2, 1, 3)["total"] > budget
        assert all(p % d == 0 for p, d in zip(row["largest_patch"], total_strides(arch)))
    assert rev["deepest_blocks_per_stage"][0] >= 2 * plain["deepest_blocks_per_stage"][0]
    assert rev["widest_features_per_stage"][0] > plain["widest_features_per_stage"][0]
    text = format_tradeoff_table(tradeoff_rows(budget, arch, [40, 160, 160], [8, 32, 32], 2, 1, 3))
    assert "reversible / plain" in text and "largest patch" in text
    entry = {"architecture": arch, "patch_size": [8, 32, 32], "batch_size": 2, "median_shape": [40, 160, 160],
             "target_spacing": [1.0, 1.0, 1.0]}
    assert tradeoff_table(Configuration.from_json("3d_fullres", entry), budget, 1, 3) == text


def test_budget_too_small_reports_nothing_fits() -> None:
    """A budget below the smallest configuration gives None rather than a configuration that does not fit."""
    found = search_configuration(1000, arch_for("unet"), [40, 160, 160], [8, 64, 64], 2, 1, 3)
    assert found["plain"]["largest_patch"] is None and found["plain"]["deepest_blocks_per_stage"] is None
