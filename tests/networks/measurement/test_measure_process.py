"""A training step measured in a fresh process (segkit.networks.measurement.measure_process): the malloc settings
that make CPU peaks visible, the child's report parsed, its failure raised with the child's own error."""

from __future__ import annotations

import pytest
import torch
from network_data import arch_for

from segkit.networks import build_network
from segkit.networks.measurement.measure import saved_activation_bytes
from segkit.networks.measurement.measure_process import CPU_ENV, measure_in_subprocess

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_the_child_reports_the_step_and_its_peak_covers_the_saved_activations():
    arch = arch_for("unet", 3)
    patch = [8, 32, 32]
    result = measure_in_subprocess({"arch": arch, "patch_size": patch, "batch_size": 1, "in_channels": 1,
                                    "num_outputs": 3, "steps": 2, "threads": 1}, timeout=300)
    net = build_network(arch, 1, 3)
    assert result["parameters"] == sum(p.numel() for p in net.parameters()) and len(result["step_times"]) == 2
    x = torch.randn(1, 1, *patch)
    with torch.no_grad():
        shapes = [o.shape[2:] for o in net(x)]
    saved = saved_activation_bytes(net, x, [torch.randint(0, 3, (1, *s)) for s in shapes])
    # every saved activation is alive at the end of the forward; mmap-served blocks make them show in the RSS peak
    assert result["peak_bytes"] > saved / 2, (result["peak_bytes"], saved)
    assert CPU_ENV["MALLOC_MMAP_THRESHOLD_"] == "65536"


def test_a_failing_child_raises_with_its_error():
    with pytest.raises(RuntimeError, match=r"(?s)measurement failed: .*unknown network family .nosuchfamily."):
        measure_in_subprocess({"arch": {**arch_for("unet", 3), "family": "nosuchfamily"}, "patch_size": [8, 8, 8],
                               "batch_size": 1, "in_channels": 1, "num_outputs": 2}, timeout=300)
