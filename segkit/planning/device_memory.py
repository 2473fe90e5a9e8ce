"""The memory model a plan is priced with: the CPU tally, or the CUDA model plus a reserve.

A CPU plan prices every candidate with `segkit.planning.memory.estimate_peak_bytes` (fitted to
CPU process peaks). A CUDA plan (`segkit plan --device cuda`, or a GPU found at plan time) prices
every candidate with `segkit.planning.cuda_calibration.predict_cuda_bytes` under the precision
training uses on a GPU (`--precision auto`: bf16 autocast, cuDNN autotuner off), and adds what
the card holds besides the step's tensors:

- the CUDA context (driver, kernels, the cuBLAS/cuDNN handles), outside PyTorch's allocator;
- the cuDNN convolution workspace: PyTorch puts no cap on it (pytorch/pytorch#49207);
- the caching allocator's fragmentation and rounding (reserved above allocated).

With a calibration file (`scripts/gpu_check.py` on a GPU) the workspace and the allocator's overhead
are measured constants of the CUDA model and the context is the measured non-PyTorch memory; the
plan says "calibrated". Without one the CUDA model is the CPU tally (float32, larger than bf16
activations) and the reserve is the conservative published figures in UNCALIBRATED_RESERVE
(sources in docs/gpu.md, "What a CUDA plan reserves"); the plan says "uncalibrated".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from segkit.planning.cuda_calibration import group_key, load_calibration, predict_cuda_bytes
from segkit.planning.memory import estimate_peak_bytes

MIB = 1024 ** 2
# Training on a GPU: `--precision auto` is bf16 autocast (fp16 on pre-Ampere cards, the same two-byte
# activations), and the trainer leaves torch.backends.cudnn.benchmark off.
CUDA_PRECISION = "bf16"
CUDA_CUDNN_BENCHMARK = False
# Conservative published figures (docs/gpu.md): the CUDA context measured at 723-800 MiB on the first
# CUDA call (pytorch/pytorch#34323: 781 MB; PyTorch forums: 723 MiB, "~700+ MB"), rounded up to 1 GiB
# for the cuDNN/cuBLAS handles loaded later; a 1 GiB cuDNN workspace (MXNet's default convolution
# workspace limit; PyTorch sets none, pytorch/pytorch#49207); 10 % of the allocated peak for the
# caching allocator's fragmentation (segkit's allowance: no published figure bounds it).
UNCALIBRATED_RESERVE = {"context_bytes": 1024 * MIB, "workspace_bytes": 1024 * MIB, "fragmentation_fraction": 0.10}


@dataclass(frozen=True)
class MemoryModel:
    """How a plan prices a (architecture, patch, batch) candidate: on the CPU, or on CUDA with a reserve."""

    device: str = "cpu"                                   # "cpu" or "cuda"
    calibration: dict = field(default_factory=dict)       # the CUDA calibration (empty on the CPU)

    @property
    def calibrated(self) -> bool:
        """True when the CUDA model's constants for the training precision were measured on a GPU."""
        return self.device == "cuda" and group_key(CUDA_PRECISION, CUDA_CUDNN_BENCHMARK) in self.calibration.get(
            "groups", {})

    def price(self, arch: dict, patch: list[int], batch: int, in_channels: int, num_outputs: int) -> dict:
        """Predicted peak bytes ("total") of one training step with its breakdown; on CUDA the reserve included."""
        cpu = estimate_peak_bytes(arch, list(patch), batch, in_channels, num_outputs)
        if self.device != "cuda":
            return cpu
        cuda = predict_cuda_bytes(arch, list(patch), batch, in_channels, num_outputs, CUDA_PRECISION,
                                  CUDA_CUDNN_BENCHMARK, self.calibration)
        reserve = self.reserve(cuda)
        total = cuda["total_allocated"] + sum(reserve.values())
        breakdown = {k: v for k, v in cpu.items() if k not in ("total", "parameter_count")}
        return {**breakdown, "cuda_allocated": cuda["total_allocated"], **reserve, "total": int(total),
                "parameter_count": cpu["parameter_count"]}

    def reserve(self, cuda: dict) -> dict[str, int]:
        """Context, cuDNN workspace and fragmentation bytes added to the CUDA model's allocated peak."""
        context = int(self.calibration.get("context_bytes", UNCALIBRATED_RESERVE["context_bytes"]))
        if self.calibrated:   # the workspace is inside the measured allocated peak, rounding in the reserved one
            return {"reserve_context": context, "reserve_workspace": 0,
                    "reserve_fragmentation": max(0, cuda["total_reserved"] - cuda["total_allocated"])}
        return {"reserve_context": context, "reserve_workspace": int(UNCALIBRATED_RESERVE["workspace_bytes"]),
                "reserve_fragmentation": int(UNCALIBRATED_RESERVE["fragmentation_fraction"] * cuda["total_allocated"])}

    def describe(self) -> dict:
        """plans.json's "memory_model": what priced the plan, calibrated or not, and the reserve's source."""
        if self.device != "cuda":
            return {"device": "cpu", "model": "bytes-level tally fitted to CPU process peaks (float32)"}
        calibrated = self.calibrated
        measured_context = "context_bytes" in self.calibration
        return {
            "device": "cuda", "calibration": "calibrated" if calibrated else "uncalibrated",
            "precision": CUDA_PRECISION, "cudnn_benchmark": CUDA_CUDNN_BENCHMARK,
            "calibration_source": self.calibration.get("device_name") or self.calibration.get("source", ""),
            "reserve": {
                "context_bytes": int(self.calibration.get("context_bytes", UNCALIBRATED_RESERVE["context_bytes"])),
                "context_source": "measured (calibration file)" if measured_context else "published figure",
                "workspace": "measured, inside the CUDA model" if calibrated
                             else f"{UNCALIBRATED_RESERVE['workspace_bytes']} bytes (published figure)",
                "fragmentation": "measured allocator factor" if calibrated
                                 else f"{UNCALIBRATED_RESERVE['fragmentation_fraction']:.0%} of the allocated peak",
                "documented_in": "docs/gpu.md, What a CUDA plan reserves"},
        }


def memory_model_for(device: str, calibration_path: str | Path | None = None) -> MemoryModel:
    """The memory model for a plan's device ("cpu", "cuda" or "cuda:NAME"); CUDA reads the calibration file."""
    if not device.startswith("cuda"):
        return MemoryModel()
    calibration = load_calibration(calibration_path)
    return MemoryModel("cuda", calibration)


def summary_line(description: dict) -> str:
    """One line for the plan summary: the memory model and, on CUDA, calibrated or not and the reserve."""
    if description.get("device") != "cuda":
        return "memory model: CPU tally (float32 process peak)"
    reserve = description["reserve"]
    text = (f"memory model: CUDA, {description['calibration'].upper()} ({description['precision']} autocast); "
            f"each peak includes a reserve of {reserve['context_bytes'] / MIB:.0f} MiB CUDA context "
            f"({reserve['context_source']}), cuDNN workspace {reserve['workspace']}, fragmentation "
            f"{reserve['fragmentation']}")
    if description["calibration"] == "uncalibrated":
        text += "; run scripts/gpu_check.py on the GPU to calibrate"
    return text
