"""The plan's memory model: a CUDA plan is priced with the CUDA model plus a reserve, and says if it is calibrated."""

from __future__ import annotations

import json
import shutil

import pytest
from planning_data import one_channel_dataset, synthetic_fingerprint

from segkit.cli import main
from segkit.planning.cuda_calibration import FORMAT, load_calibration, predict_cuda_bytes
from segkit.planning.device_memory import (
    CUDA_CUDNN_BENCHMARK,
    CUDA_PRECISION,
    UNCALIBRATED_RESERVE,
    MemoryModel,
    memory_model_for,
)
from segkit.planning.memory import estimate_peak_bytes
from segkit.planning.planner import PlanOptions, plan_dataset
from segkit.plans import Plans, network_in_channels

GIB = 1024 ** 3
LARGE_CT = {"shape": [400, 512, 512], "spacing": [1.0, 0.8, 0.8]}   # a whole-body CT, voxels after crop


def _no_gpu_here(monkeypatch) -> None:
    """Plan as on a CPU-only machine, also when the tests run on a GPU."""
    monkeypatch.setattr("segkit.planning.run.detect_budget", lambda: (8 * GIB, "cpu"))


def _calibration(tmp_path, context_bytes: int | None = None) -> str:
    """A calibration file for the training precision: autocast halves the step, 64 MiB workspace, 5 % rounding."""
    calibration = {"format": FORMAT, "device_name": "test GPU",
                   "groups": {f"{CUDA_PRECISION}/benchmark_{'on' if CUDA_CUDNN_BENCHMARK else 'off'}":
                              {"activation_factor": 0.5, "workspace_bytes": 64 << 20, "points": 6}},
                   "allocator": {"reserved_factor": 1.05, "reserved_extra_bytes": 0}}
    if context_bytes is not None:
        calibration["context_bytes"] = context_bytes
    path = tmp_path / "cuda_calibration.json"
    path.write_text(json.dumps(calibration))
    return str(path)


def _independent_cuda_peak(plans: dict, name: str, calibration: dict) -> int:
    """The CUDA model's allocated peak of a planned entry plus the documented reserve, computed here."""
    entry = plans["configurations"][name]
    cuda = predict_cuda_bytes(entry["architecture"], entry["patch_size"], entry["batch_size"],
                              network_in_channels(Plans.from_json(plans), name), plans["num_outputs"], CUDA_PRECISION,
                              CUDA_CUDNN_BENCHMARK, calibration)
    if plans["memory_model"]["calibration"] == "calibrated":
        reserve = calibration.get("context_bytes", UNCALIBRATED_RESERVE["context_bytes"]) + \
            cuda["total_reserved"] - cuda["total_allocated"]
    else:
        reserve = UNCALIBRATED_RESERVE["context_bytes"] + UNCALIBRATED_RESERVE["workspace_bytes"] + \
            int(UNCALIBRATED_RESERVE["fragmentation_fraction"] * cuda["total_allocated"])
    return cuda["total_allocated"] + reserve


def test_large_dataset_planned_for_an_8_gb_gpu_on_this_cpu(tiny_dataset, tmp_path, monkeypatch, capsys) -> None:
    """`plan --device cuda --gpu-memory 8` on a CPU: every CUDA peak + reserve <= 8 GiB, flagged uncalibrated."""
    _no_gpu_here(monkeypatch)
    monkeypatch.setattr("segkit.planning.device_memory.load_calibration",
                        lambda path=None: load_calibration(tmp_path / "absent.json"))
    dataset = tmp_path / "Large"
    shutil.copytree(tiny_dataset, dataset)
    work = tmp_path / "work"
    assert main(["plan", str(dataset), "--work-dir", str(work), "--no-tradeoff", "--configurations", "3d_fullres"]) == 0
    fingerprint = json.loads((work / "fingerprint.json").read_text())
    for case in fingerprint["cases"]:   # the same cases, now whole-body CT sized: a large dataset to plan
        case["shape_after_crop"], case["spacing"] = LARGE_CT["shape"], LARGE_CT["spacing"]
    (work / "fingerprint.json").write_text(json.dumps(fingerprint))
    capsys.readouterr()
    assert main(["plan", str(dataset), "--work-dir", str(work), "--device", "cuda", "--gpu-memory", "8",
                 "--configurations", "3d_fullres", "2d", "3d_lowres"]) == 0
    out = capsys.readouterr().out
    plans = json.loads((work / "plans.json").read_text())
    assert plans["device"] == "cuda" and plans["network"] == "revmbconv"
    assert plans["memory_model"]["device"] == "cuda" and plans["memory_model"]["calibration"] == "uncalibrated"
    assert "memory model: CUDA, UNCALIBRATED" in out and "scripts/gpu_check.py" in out
    assert "on CUDA, reserve included" in out                       # the trade-off table is priced the same way
    assert set(plans["configurations"]) >= {"3d_fullres", "2d", "3d_lowres", "3d_cascade_fullres"}
    calibration = load_calibration(tmp_path / "absent.json")
    for name, entry in plans["configurations"].items():
        peak = _independent_cuda_peak(plans, name, calibration)
        assert entry["memory"]["predicted_peak_bytes"] == peak <= 8 * GIB, name
        assert entry["memory"]["breakdown"]["reserve_context"] == UNCALIBRATED_RESERVE["context_bytes"]
        assert entry["memory"]["breakdown"]["reserve_workspace"] == UNCALIBRATED_RESERVE["workspace_bytes"]
    # what the CPU-priced plan of the same card chose does not fit the card once the reserve is counted
    capsys.readouterr()
    (tmp_path / "cpu_priced").mkdir()
    shutil.copy(work / "fingerprint.json", tmp_path / "cpu_priced" / "fingerprint.json")
    assert main(["plan", str(dataset), "--work-dir", str(tmp_path / "cpu_priced"), "--gpu-memory", "8",
                 "--no-tradeoff", "--configurations", "3d_fullres"]) == 0
    cpu_priced = json.loads((tmp_path / "cpu_priced" / "plans.json").read_text())
    assert cpu_priced["memory_model"]["device"] == "cpu"
    assert _independent_cuda_peak(plans | {"configurations": cpu_priced["configurations"]}, "3d_fullres",
                                  calibration) > 8 * GIB


def test_calibrated_plan_uses_the_measured_constants_and_context(tmp_path) -> None:
    """With a calibration file: the fitted factor, the measured allocator rounding and context; 'calibrated'."""
    (tmp_path / "ds").mkdir()
    info = one_channel_dataset(tmp_path / "ds", "CT")
    path = _calibration(tmp_path, context_bytes=600 << 20)
    options = PlanOptions(network="unet", budget_bytes=8 * GIB, device="cuda", calibration_path=path,
                          configurations=("3d_fullres",))
    plans = plan_dataset(info, synthetic_fingerprint([300, 400, 400], [1.0, 0.8, 0.8]), options)
    assert plans["memory_model"]["calibration"] == "calibrated"
    assert plans["memory_model"]["reserve"]["context_source"] == "measured (calibration file)"
    entry = plans["configurations"]["3d_fullres"]
    calibration = load_calibration(path)
    assert entry["memory"]["predicted_peak_bytes"] == _independent_cuda_peak(plans, "3d_fullres", calibration) <= 8 * GIB
    assert entry["memory"]["breakdown"]["reserve_context"] == 600 << 20
    assert entry["memory"]["breakdown"]["reserve_workspace"] == 0   # measured inside the CUDA model's allocated peak
    # halved activations buy a larger step than the uncalibrated (float32 tally) plan of the same card
    uncalibrated = plan_dataset(info, synthetic_fingerprint([300, 400, 400], [1.0, 0.8, 0.8]),
                                PlanOptions(network="unet", budget_bytes=8 * GIB, device="cuda",
                                            calibration_path=str(tmp_path / "absent.json"),
                                            configurations=("3d_fullres",)))
    assert uncalibrated["memory_model"]["calibration"] == "uncalibrated"
    step = lambda e: e["batch_size"] * e["patch_size"][0] * e["patch_size"][1] * e["patch_size"][2]  # noqa: E731
    assert step(entry) > step(uncalibrated["configurations"]["3d_fullres"])


def test_a_calibration_without_the_training_precision_is_uncalibrated(tmp_path) -> None:
    """Only fp32 measured: a bf16 plan is still priced with the published reserve and says so."""
    path = tmp_path / "cuda_calibration.json"
    path.write_text(json.dumps({"format": FORMAT, "groups": {"fp32/benchmark_off": {"activation_factor": 1.0,
                                                                                    "workspace_bytes": 0}},
                                "allocator": {"reserved_factor": 1.0, "reserved_extra_bytes": 0}}))
    model = memory_model_for("cuda:Some GPU", path)
    assert model.device == "cuda" and not model.calibrated
    assert model.describe()["calibration"] == "uncalibrated"


def test_cpu_model_is_the_tally_and_cuda_adds_the_reserve() -> None:
    """A CPU plan's price is estimate_peak_bytes; the uncalibrated CUDA price adds context, workspace, 10 %."""
    arch = {"family": "unet", "spatial_dims": 3, "features_per_stage": [8, 16, 32], "kernel_sizes": [[3, 3, 3]] * 3,
            "strides": [[1, 1, 1], [2, 2, 2], [2, 2, 2]], "blocks_per_stage": [2, 2, 2],
            "decoder_blocks_per_stage": [2, 2], "norm": "instance", "deep_supervision": True}
    cpu = estimate_peak_bytes(arch, [32, 32, 32], 2, 1, 3)
    assert MemoryModel().price(arch, [32, 32, 32], 2, 1, 3) == cpu
    cuda = MemoryModel("cuda", {"groups": {}}).price(arch, [32, 32, 32], 2, 1, 3)
    assert cuda["cuda_allocated"] == cpu["total"]
    assert cuda["total"] == cpu["total"] + (2 << 30) + int(0.1 * cpu["total"])
    assert memory_model_for("cpu").describe()["device"] == "cpu"


def test_device_cuda_without_a_gpu_needs_the_cards_memory(tiny_dataset, tmp_path, monkeypatch, capsys) -> None:
    """No GPU here and no --gpu-memory: one message, exit 2, nothing written."""
    _no_gpu_here(monkeypatch)
    work = tmp_path / "work"
    assert main(["plan", str(tiny_dataset), "--work-dir", str(work), "--device", "cuda"]) == 2
    err = capsys.readouterr().err
    assert "--device cuda" in err and "--gpu-memory" in err and "Traceback" not in err
    assert not work.exists()
    assert main(["plan", str(tiny_dataset), "--work-dir", str(work), "--device", "cuda", "--gpu-memory", "-1"]) == 2
    assert "--gpu-memory must be positive" in capsys.readouterr().err


@pytest.mark.parametrize("device", ["cpu", "auto"])
def test_cpu_plans_record_the_cpu_model(tiny_dataset, tmp_path, monkeypatch, device) -> None:
    """Planning for this CPU: the CPU tally, an 8 GB budget, memory_model says so."""
    _no_gpu_here(monkeypatch)
    from segkit.planning.run import plan_and_write

    plans, _, summary = plan_and_write(tiny_dataset, work_dir=tmp_path / device, configurations=("3d_fullres",),
                                       tradeoff=False, device=device)
    assert plans["device"] == "cpu" and plans["memory_model"]["device"] == "cpu"
    assert plans["gpu_memory_bytes"] == 8 * GIB and "memory model: CPU tally" in summary
