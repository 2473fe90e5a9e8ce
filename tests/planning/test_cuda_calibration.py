"""CUDA constants of the memory model: CPU defaults without a calibration, the fit recovers known constants."""

import json

import pytest

from segkit.errors import UserError
from segkit.planning.cuda_calibration import (
    fit_calibration,
    group_key,
    load_calibration,
    predict_cuda_bytes,
    step_features,
)
from segkit.planning.memory import estimate_peak_bytes

ARCH = {"family": "unet", "spatial_dims": 3, "features_per_stage": [8, 16, 32], "kernel_sizes": [[3, 3, 3]] * 3,
        "strides": [[1, 1, 1], [2, 2, 2], [2, 2, 2]], "blocks_per_stage": [2, 2, 2],
        "decoder_blocks_per_stage": [2, 2], "norm": "instance", "deep_supervision": True}


def test_without_a_calibration_file_the_cuda_prediction_is_the_cpu_model(tmp_path):
    calibration = load_calibration(tmp_path / "absent.json")
    assert calibration["groups"] == {} and "CPU defaults" in calibration["source"]
    cpu = estimate_peak_bytes(ARCH, [32, 32, 32], 2, 1, 3)
    cuda = predict_cuda_bytes(ARCH, [32, 32, 32], 2, 1, 3, "bf16", True, calibration)
    assert cuda["total_allocated"] == cuda["total_reserved"] == cpu["total"] and not cuda["calibrated"]
    assert cuda["step_allocated"] == cpu["total"] - cpu["parameters"]


def test_fit_recovers_autocast_factor_workspace_and_allocator_rounding(tmp_path):
    truth = {"fp32/benchmark_off": (1.0, 40 << 20), "bf16/benchmark_off": (0.55, 60 << 20),
             "bf16/benchmark_on": (0.55, 300 << 20)}
    rows = []
    for patch in ([16, 16, 16], [32, 32, 32], [48, 48, 48], [32, 64, 64]):
        for batch in (2, 4):
            features = step_features(ARCH, patch, batch, 1, 3)
            for key, (factor, workspace) in truth.items():
                precision, bench = key.split("/")
                step = features["optimizer"] + factor * features["step"] + workspace
                rows.append({"precision": precision, "cudnn_benchmark": bench == "benchmark_on", "features": features,
                             "measured_step": step,
                             "measured_reserved_total": 1.125 * (features["parameters"] + step) + (2 << 20)})
    fitted = fit_calibration(rows)
    for key, (factor, workspace) in truth.items():
        assert fitted["groups"][key]["activation_factor"] == pytest.approx(factor, abs=1e-3)
        assert fitted["groups"][key]["workspace_bytes"] == pytest.approx(workspace, rel=1e-3)
    assert fitted["allocator"]["reserved_factor"] == pytest.approx(1.125, abs=1e-3)
    path = tmp_path / "cuda_calibration.json"
    path.write_text(json.dumps(fitted))
    row = rows[-1]
    predicted = predict_cuda_bytes(ARCH, [32, 64, 64], 4, 1, 3, "bf16", True, load_calibration(path))
    assert predicted["calibrated"] and predicted["step_allocated"] == pytest.approx(row["measured_step"], rel=1e-3)
    assert predicted["total_reserved"] == pytest.approx(row["measured_reserved_total"], rel=1e-3)
    assert group_key("fp16", False) == "fp16/benchmark_off"


def test_a_foreign_calibration_file_is_a_user_error(tmp_path):
    path = tmp_path / "cuda_calibration.json"
    path.write_text(json.dumps({"groups": {}}))
    with pytest.raises(UserError, match="not a segkit CUDA memory calibration"):
        load_calibration(path)
