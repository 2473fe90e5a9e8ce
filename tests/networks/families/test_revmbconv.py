"""RevMBConv: reversible stages of the entry's depth, MBConv expansion per stage, no batch norm."""

from __future__ import annotations

import pytest
import torch
from network_data import arch_for

from segkit.networks import build_network

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_revmbconv_stage_depth_width_expansion() -> None:
    """Each reversible stage has the entry's block count, width and expansion (hidden = e * C/2)."""
    from segkit.networks.blocks.reversible import ReversibleSequence

    arch = arch_for("revmbconv", 3)
    net = build_network(arch, 1, 2)
    sequences = [m for stage in net.encoder for m in stage.modules() if isinstance(m, ReversibleSequence)]
    assert [len(s.blocks) for s in sequences] == arch["blocks_per_stage"]
    for seq, f, e in zip(sequences, arch["features_per_stage"], arch["expansion_ratios"]):
        expand = seq.blocks[0].f[0]
        assert expand.in_channels == f // 2 and expand.out_channels == int(round(f // 2 * e))
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in net.modules())
