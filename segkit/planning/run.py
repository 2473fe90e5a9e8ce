"""The plan stage end to end: dataset -> fingerprint.json -> plans.json (+ a readable summary)."""

from __future__ import annotations

from pathlib import Path

from segkit.errors import UserError
from segkit.fingerprint import compute_fingerprint, is_current, read_fingerprint, write_fingerprint
from segkit.io.dataset import DatasetInfo, load_dataset, training_cases
from segkit.networks.registry import family_names
from segkit.planning.device_memory import MemoryModel, memory_model_for
from segkit.planning.memory_search import tradeoff_table
from segkit.planning.planner import DEFAULT_BUDGET_GB, GIB, PlanOptions, detect_budget, plan_dataset
from segkit.planning.summary import plans_summary
from segkit.plans import (
    Plans,
    configuration_of,
    configurations_of,
    network_in_channels,
    num_outputs_of,
    write_plans,
)
from segkit.workdir import fingerprint_path, plans_path, resolve_work_dir


def load_or_compute_fingerprint(info: DatasetInfo, work_dir: Path, num_workers: int, force: bool) -> dict:
    """Reuse fingerprint.json when it describes the same cases, else compute and write it."""
    path = fingerprint_path(work_dir)
    case_ids = [case.case_id for case in training_cases(info)]
    if path.is_file() and not force:
        existing = read_fingerprint(path)
        if is_current(existing, case_ids):
            return existing
    fingerprint = compute_fingerprint(info, num_workers=num_workers)
    write_fingerprint(path, fingerprint)
    return fingerprint


def _verify_or_fail(dataset: Path, num_workers: int) -> None:
    """Run the integrity check and stop with its problems if any."""
    from segkit.verify import format_problems, verify_dataset

    problems = verify_dataset(dataset, num_workers=num_workers)
    if problems:
        raise UserError(f"dataset failed verification:\n{format_problems(problems)}", dataset)


def resolve_network(network: str, planning_for_cpu: bool) -> str:
    """'auto' means the reversible network when planning for a GPU budget, the plain U-Net on a CPU.

    Reversibility trades compute for memory: on a GPU the budget binds and revmbconv buys
    bigger patches and deeper networks; on a CPU time binds, and the depthwise convolutions and
    recomputation made a revmbconv step about 2x slower than a U-Net step of the same patch
    (docs/benchmarks.md, training).
    """
    if network != "auto":
        if network not in family_names():
            raise UserError(f"unknown network family {network!r}; choose from auto, {', '.join(family_names())}")
        return network
    return "unet" if planning_for_cpu else "revmbconv"


DEVICES = ("auto", "cpu", "cuda")


def budget_and_device(gpu_memory_gb: float | None, device: str = "auto") -> tuple[int, str]:
    """The memory budget in bytes and the device planned for ("cpu", "cuda" or "cuda:NAME" when detected).

    auto: the CUDA device found here, else the CPU. cuda: a GPU of --gpu-memory GB (it need not be
    here: a CPU-only machine plans for a GPU), else the one found. cpu: this CPU, even with a GPU.
    """
    if device not in DEVICES:
        raise UserError(f"--device must be one of {', '.join(DEVICES)}, got {device!r}")
    if gpu_memory_gb is not None and gpu_memory_gb <= 0:
        raise UserError(f"--gpu-memory must be positive, got {gpu_memory_gb}")
    detected_budget, detected = detect_budget()
    if device == "cuda" and not detected.startswith("cuda") and gpu_memory_gb is None:
        raise UserError("--device cuda on a machine without a CUDA GPU needs --gpu-memory GB (the card's memory)")
    if device == "cpu":
        planned = "cpu"
    elif device == "cuda":
        planned = detected if detected.startswith("cuda") else "cuda"
    else:
        planned = detected
    if gpu_memory_gb:
        budget = int(gpu_memory_gb * GIB)
    else:   # a detected GPU's memory, unless planning for this CPU
        budget = int(DEFAULT_BUDGET_GB * GIB) if planned == "cpu" else detected_budget
    return budget, planned


def planning_inputs(dataset: Path, work_dir: str | Path | None, num_workers: int, gpu_memory_gb: float | None,
                    verify: bool, force: bool, device: str = "auto") -> tuple[DatasetInfo, Path, dict, int, str]:
    """What every plan starts from: dataset info, work dir, fingerprint (written), memory budget and device."""
    budget, planned = budget_and_device(gpu_memory_gb, device)   # flag mistakes before any fingerprinting
    info = load_dataset(dataset)
    if verify:
        _verify_or_fail(dataset, num_workers)
    work = resolve_work_dir(dataset, work_dir)
    fingerprint = load_or_compute_fingerprint(info, work, num_workers, force)
    return info, work, fingerprint, budget, planned


def plan_and_write(dataset: Path, work_dir: str | Path | None = None, num_workers: int = 1,
                   gpu_memory_gb: float | None = None, network: str = "auto",
                   configurations: tuple[str, ...] = ("3d_fullres", "2d", "3d_lowres"), verify: bool = False,
                   force: bool = False, max_depth_multiplier: int = 2, max_width_multiplier: float = 2.0,
                   tradeoff: bool = True, device: str = "auto",
                   calibration_path: str | None = None) -> tuple[dict, Path, str]:
    """Fingerprint and plan a dataset; write both JSON files; return plans, work dir and summary text."""
    info, work, fingerprint, budget, device = planning_inputs(dataset, work_dir, num_workers, gpu_memory_gb, verify,
                                                              force, device)
    planning_for_cpu = gpu_memory_gb is None and device == "cpu"
    if planning_for_cpu:
        # Planning for this CPU: compute, not memory, is the limit, so do not grow the network.
        max_depth_multiplier, max_width_multiplier = 1, 1.0
    network = resolve_network(network, planning_for_cpu)
    options = PlanOptions(network=network, budget_bytes=budget, device=device,
                          max_depth_multiplier=max_depth_multiplier, max_width_multiplier=max_width_multiplier,
                          configurations=configurations, calibration_path=calibration_path)
    plans = plan_dataset(info, fingerprint, options)
    written = write_plans(plans_path(work), plans)
    summary = plans_summary(written)
    if tradeoff and "3d_fullres" in configurations_of(written):
        summary += "\n\n" + tradeoff_text(written, budget, memory_model_for(device, calibration_path))
    return plans, work, summary


def tradeoff_text(plans: Plans, budget: int, memory_model: MemoryModel | None = None) -> str:
    """The memory model's reversible-vs-plain trade-off table for the full-resolution configuration."""
    entry = configuration_of(plans, "3d_fullres")
    return tradeoff_table(entry, budget, network_in_channels(plans, "3d_fullres"), num_outputs_of(plans),
                          memory_model)
