"""One training step measured (segkit.networks.measurement.measure): the outputs' shapes the targets are made for,
and the step's report (parameters, step times, a peak above the baseline)."""

from __future__ import annotations

import pytest
import torch
from network_data import arch_for

from segkit.networks import build_network
from segkit.networks.measurement.measure import measure_step, output_shapes

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("family, dims, patch", [("unet", 3, [8, 32, 32]), ("resenc", 3, [16, 16, 32]),
                                                  ("unet", 2, [32, 24])])
def test_output_shapes_are_the_networks_outputs(family, dims, patch):
    arch = arch_for(family, dims)
    net = build_network(arch, 1, 3).eval()
    with torch.no_grad():
        outputs = net(torch.zeros(1, 1, *patch))
    assert output_shapes(arch, patch) == [list(o.shape[2:]) for o in outputs]
    assert output_shapes({**arch, "deep_supervision": False}, patch) == [patch]


def test_a_step_reports_its_parameters_times_and_peak():
    arch = arch_for("unet", 3)
    spec = {"arch": arch, "patch_size": [8, 32, 32], "batch_size": 1, "in_channels": 1, "num_outputs": 3,
            "steps": 3, "threads": 1}
    result = measure_step(spec)
    assert result["parameters"] == sum(p.numel() for p in build_network(arch, 1, 3).parameters())
    assert len(result["step_times"]) == 3 and result["step_seconds"] == min(result["step_times"][1:])
    assert result["device"] == "cpu" and result["precision"] == "fp32"
    # in this process freed memory is reused, so the peak above the baseline may be 0; -1: the kernel refused the reset
    assert result["baseline_bytes"] > 0 and (result["peak_bytes"] >= 0 or result["peak_bytes"] == -1)
