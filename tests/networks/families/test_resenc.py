"""ResEnc: residual blocks, more of them in deeper stages."""

from __future__ import annotations

import pytest
from network_data import arch_for

from segkit.networks import build_network

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_resenc_has_more_blocks_in_deeper_stages() -> None:
    """ResEnc stages hold blocks_per_stage residual blocks (identity or projected skips)."""
    from segkit.networks.families.resenc import ResidualBlock

    arch = arch_for("resenc", 3)
    net = build_network(arch, 1, 2)
    counts = [sum(isinstance(m, ResidualBlock) for m in stage.modules()) for stage in net.encoder]
    assert counts == arch["blocks_per_stage"]
