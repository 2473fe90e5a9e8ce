"""CUDA constants of the memory model: what a CUDA step costs on top of the bytes-level (CPU-fitted) model.

`segkit.planning.memory.estimate_peak_bytes` counts tensors; its transient constants were
fitted to CPU peaks. On CUDA three things differ and are fitted by `scripts/gpu_check.py` from
measured steps (`torch.cuda.max_memory_allocated` / `max_memory_reserved`), per precision and
cuDNN autotuner setting, and stored in `cuda_calibration.json` next to this file:

- autocast copies: under bf16/fp16 autocast activations are stored in 2 bytes, plus float32
  copies where autocast keeps them (norms, the loss): `activation_factor` scales the model's
  step bytes (activations + transient, or gradients + workspace when larger);
- cuDNN workspace and kernels: a constant `workspace_bytes` per group;
- allocator rounding and caching: reserved = `reserved_factor` x allocated + `reserved_extra_bytes`.

    step_allocated = optimizer + activation_factor x (model step bytes - optimizer) + workspace_bytes
    total_allocated = parameters + step_allocated

Without the file (no GPU has calibrated this checkout) every factor is 1 and every constant 0:
the CPU model, as before.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from segkit.errors import UserError
from segkit.jsonio import read_json
from segkit.planning.memory import estimate_peak_bytes

CALIBRATION_PATH = Path(__file__).with_name("cuda_calibration.json")
FORMAT = "segkit-cuda-memory-calibration-1"
DEFAULT_GROUP = {"activation_factor": 1.0, "workspace_bytes": 0}
DEFAULT_ALLOCATOR = {"reserved_factor": 1.0, "reserved_extra_bytes": 0}


def group_key(precision: str, cudnn_benchmark: bool) -> str:
    """Name of a calibration group, e.g. 'bf16/benchmark_off'."""
    return f"{precision}/benchmark_{'on' if cudnn_benchmark else 'off'}"


def load_calibration(path: str | Path | None = None) -> dict:
    """The stored CUDA calibration, or the CPU defaults when the file is absent."""
    path = Path(path) if path else CALIBRATION_PATH
    if not path.is_file():
        return {"format": FORMAT, "source": "CPU defaults (no CUDA calibration file)", "groups": {},
                "allocator": dict(DEFAULT_ALLOCATOR)}
    calibration = read_json(path, "CUDA memory calibration")
    if not isinstance(calibration, dict) or calibration.get("format") != FORMAT:
        raise UserError(f"not a segkit CUDA memory calibration (expected format {FORMAT!r})", path)
    return calibration


def step_features(arch: dict, patch_size: list[int], batch_size: int, in_channels: int, num_outputs: int,
                  optimizer: str = "sgd") -> dict:
    """The CPU model's parameter, optimizer and step bytes (step = total - parameters - optimizer)."""
    base = estimate_peak_bytes(arch, patch_size, batch_size, in_channels, num_outputs, optimizer=optimizer)
    return {"parameters": base["parameters"], "optimizer": base["optimizer"],
            "step": base["total"] - base["parameters"] - base["optimizer"]}


def predict_cuda_bytes(arch: dict, patch_size: list[int], batch_size: int, in_channels: int, num_outputs: int,
                       precision: str = "fp32", cudnn_benchmark: bool = False, calibration: dict | None = None,
                       optimizer: str = "sgd") -> dict:
    """Predicted CUDA peak of one training step: allocated and reserved, total and above the weights."""
    calibration = calibration or load_calibration()
    group = calibration["groups"].get(group_key(precision, cudnn_benchmark), DEFAULT_GROUP)
    allocator = calibration.get("allocator", DEFAULT_ALLOCATOR)
    features = step_features(arch, patch_size, batch_size, in_channels, num_outputs, optimizer)
    step = features["optimizer"] + group["activation_factor"] * features["step"] + group["workspace_bytes"]
    total = features["parameters"] + step
    reserved = allocator["reserved_factor"] * total + allocator["reserved_extra_bytes"]
    return {"step_allocated": int(step), "total_allocated": int(total), "total_reserved": int(reserved),
            "parameters": features["parameters"], "calibrated": group is not DEFAULT_GROUP}


def fit_calibration(rows: list[dict]) -> dict:
    """Least-squares constants from measured rows.

    Each row: precision, cudnn_benchmark, features (step_features), measured_step (allocated peak
    above the weights), measured_reserved_total (reserved peak including the weights).
    """
    groups = {}
    for key in sorted({group_key(r["precision"], r["cudnn_benchmark"]) for r in rows}):
        members = [r for r in rows if group_key(r["precision"], r["cudnn_benchmark"]) == key]
        x = np.array([r["features"]["step"] for r in members], dtype=float)
        y = np.array([r["measured_step"] - r["features"]["optimizer"] for r in members], dtype=float)
        factor, workspace = 0.0, 0.0
        if len(members) >= 2 and np.ptp(x) > 0:
            factor, workspace = np.linalg.lstsq(np.stack([x, np.ones_like(x)], 1), y, rcond=None)[0]
        if factor <= 0 or workspace < 0:      # too few or too noisy points for two constants: a factor alone
            factor, workspace = float(y.sum() / max(x.sum(), 1.0)), 0.0
        groups[key] = {"activation_factor": round(float(factor), 4), "workspace_bytes": int(workspace),
                       "points": len(members)}
    totals = np.array([r["features"]["parameters"] + r["measured_step"] for r in rows], dtype=float)
    reserved = np.array([r["measured_reserved_total"] for r in rows], dtype=float)
    if len(rows) >= 2 and np.ptp(totals) > 0:
        factor, extra = np.linalg.lstsq(np.stack([totals, np.ones_like(totals)], 1), reserved, rcond=None)[0]
    else:
        factor, extra = 1.0, float(reserved.mean() - totals.mean()) if len(rows) else 0.0
    return {"format": FORMAT, "groups": groups,
            "allocator": {"reserved_factor": round(float(factor), 4), "reserved_extra_bytes": int(extra)}}
