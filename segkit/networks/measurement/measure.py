"""Measure one training step's real peak memory and time (CUDA allocator or CPU process RSS).

CUDA: `torch.cuda.max_memory_allocated` after `reset_peak_memory_stats`, minus the bytes
allocated once the model, batch and targets exist.

CPU: the step runs in a fresh subprocess (`python -m segkit.networks.measurement.measure SPEC_JSON`)
whose glibc malloc is told to serve every large block with mmap (`MALLOC_MMAP_THRESHOLD_`),
so freed tensors leave the resident set at once. After imports, model, batch and target
creation the child records its resident set (VmRSS), resets the kernel's high-water mark
(`/proc/self/clear_refs` = 5; ru_maxrss cannot be reset) and reports VmHWM - baseline after
the steps. A no-grad forward before the baseline keeps one-time runtime set-up (OpenMP pool,
oneDNN kernels) out of the peak. The first step allocates gradients and optimizer state; the
peak spans all steps.
"""

from __future__ import annotations

import json
import re
import sys
import time

# the subprocess runner lives in its own module so families can calibrate with it without importing build_network
from segkit.networks.measurement.measure_process import CPU_ENV, measure_in_subprocess

__all__ = ["CPU_ENV", "measure_in_subprocess", "measure_step", "output_shapes", "saved_activation_bytes"]



def _status_kib(field: str) -> int:
    """A VmXXX field of /proc/self/status in KiB."""
    with open("/proc/self/status") as handle:
        match = re.search(rf"{field}:\s+(\d+)", handle.read())
    if match is None:
        raise RuntimeError(f"/proc/self/status has no {field} field")
    return int(match.group(1))


def _reset_peak_rss() -> bool:
    """Reset the kernel's resident-set high-water mark; False where that is not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def output_shapes(arch: dict, patch_size: list[int]) -> list[list[int]]:
    """Spatial shapes of the network's outputs, highest resolution first."""
    shapes, shape = [], list(patch_size)
    for stride in arch["strides"]:
        shape = [size // s for size, s in zip(shape, stride)]
        shapes.append(shape)
    count = len(shapes) - 1 if arch.get("deep_supervision", True) else 1
    return shapes[:count]


def _loss(outputs, targets):
    """Deep-supervision cross-entropy + soft Dice, weights halving per resolution (nnU-Net style)."""
    import torch
    import torch.nn.functional as F

    outputs = outputs if isinstance(outputs, list) else [outputs]
    weights = [0.5 ** i for i in range(len(outputs))]
    total = 0.0
    for weight, logits, target in zip(weights, outputs, targets):
        probs = torch.softmax(logits, 1)
        onehot = F.one_hot(target, logits.shape[1]).movedim(-1, 1).to(probs.dtype)
        dims = tuple(range(2, logits.dim()))
        dice = (2 * (probs * onehot).sum(dims) + 1e-5) / (probs.sum(dims) + onehot.sum(dims) + 1e-5)
        total = total + weight * (F.cross_entropy(logits, target) + 1 - dice.mean())
    return total / sum(weights)


def measure_step(spec: dict) -> dict:
    """Build the network in spec, run spec['steps'] SGD steps, return peak bytes above baseline and step time.

    Optional spec keys: "precision" (fp32 | bf16 | fp16: the forward under autocast),
    "cudnn_benchmark" (CUDA) and "threads" (torch CPU threads). On CUDA the reserved (caching allocator) peak is reported as well.
    """
    import contextlib

    import torch

    from segkit.networks.build import build_network

    torch.manual_seed(0)
    if spec.get("threads"):
        torch.set_num_threads(int(spec["threads"]))
    device = torch.device(spec.get("device", "cpu"))
    precision = spec.get("precision", "fp32")
    autocast = (contextlib.nullcontext() if precision == "fp32" else
                torch.autocast(device.type, dtype=torch.bfloat16 if precision == "bf16" else torch.float16))
    if device.type == "cuda":   # earlier measurements in this process must not count: free the cache first
        torch.backends.cudnn.benchmark = bool(spec.get("cudnn_benchmark", False))
        torch.cuda.empty_cache()
    arch, patch, batch = spec["arch"], spec["patch_size"], spec["batch_size"]
    net = build_network(arch, spec["in_channels"], spec["num_outputs"]).to(device)
    optimizer = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.99, nesterov=True)
    x = torch.randn(batch, spec["in_channels"], *patch, device=device)
    with torch.no_grad():  # one-time runtime set-up (thread pool, oneDNN kernels) stays out of the step's peak
        probe = net(x)     # and the outputs' shapes (UNet++'s nested outputs are all at the patch resolution)
    shapes = [list(o.shape[2:]) for o in (probe if isinstance(probe, (list, tuple)) else [probe])]
    del probe
    targets = [torch.randint(0, spec["num_outputs"], (batch, *s), device=device) for s in shapes]
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats(device)
        baseline = torch.cuda.memory_allocated(device)
        baseline_reserved = torch.cuda.memory_reserved(device)
    else:
        baseline = _status_kib("VmRSS") * 1024
        peak_resettable = _reset_peak_rss()
    times = []
    for _ in range(spec.get("steps", 2)):
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        with autocast:
            outputs = net(x)
        _loss(outputs, targets).backward()
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device) - baseline
    else:
        peak = _status_kib("VmHWM") * 1024 - baseline if peak_resettable else -1
    warm = times[1:] or times
    result = {"peak_bytes": int(peak), "baseline_bytes": int(baseline), "step_seconds": min(warm),
              "step_times": times, "parameters": sum(p.numel() for p in net.parameters()), "device": str(device),
              "precision": precision}
    if device.type == "cuda":
        result |= {"peak_reserved_bytes": int(torch.cuda.max_memory_reserved(device) - baseline_reserved),
                   "baseline_reserved_bytes": int(baseline_reserved),
                   "cudnn_benchmark": bool(torch.backends.cudnn.benchmark)}
    return result


def saved_activation_bytes(net, x, targets) -> int:
    """Bytes of distinct storages autograd saves for backward in forward + loss (parameters and x excluded)."""
    import torch

    skip = {p.untyped_storage().data_ptr() for p in net.parameters()} | {x.untyped_storage().data_ptr()}
    skip |= {t.untyped_storage().data_ptr() for t in targets}
    storages: dict[int, int] = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in skip:
            storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        loss = _loss(net(x), targets)
    del loss
    return sum(storages.values())


if __name__ == "__main__":
    print(json.dumps(measure_step(json.loads(sys.argv[1]))))
