"""What fits a memory budget: largest patch, deepest and widest network, reversible vs plain.

All searches use the planner's memory model: `estimate_peak_bytes` for a CPU plan, the CUDA model
plus its reserve (`segkit.planning.device_memory.MemoryModel`) when one is given. The patch keeps the median
shape's aspect ratio and each axis stays a multiple of the product of the strides; depth
multiplies every stage's block count (encoder and decoder); width multiplies every stage's
features in steps of 1/8, rounded down to a multiple of 8 (the coupling needs even channels).
"""

from __future__ import annotations

import copy
import math

from segkit.networks.registry import family_of
from segkit.planning.device_memory import MemoryModel
from segkit.planning.memory import estimate_peak_bytes
from segkit.plans import Configuration, total_strides

MAX_DEPTH_MULTIPLIER = 64
MAX_WIDTH_EIGHTHS = 8 * 16


def _peak(arch: dict, patch: list[int], ctx: dict) -> int:
    """Predicted total bytes for arch at patch with the fixed batch/channels/dtype (or memory model) in ctx."""
    model = ctx.get("memory_model")
    if model is not None:
        return int(model.price(arch, patch, ctx["batch_size"], ctx["in_channels"], ctx["num_outputs"])["total"])
    return estimate_peak_bytes(arch, patch, ctx["batch_size"], ctx["in_channels"], ctx["num_outputs"],
                               ctx.get("dtype_bytes", 4), ctx.get("optimizer", "sgd"))["total"]


def patch_at_scale(shape: list[int], scale: float, divisor: list[int]) -> list[int]:
    """shape * scale rounded down to the divisors (at least one divisor per axis)."""
    return [max(d, int(size * scale // d) * d) for size, d in zip(shape, divisor)]


def largest_patch(budget_bytes: int, arch: dict, median_shape: list[int], ctx: dict,
                  max_shape: list[int] | None = None) -> list[int] | None:
    """The largest patch with the median shape's aspect ratio that fits (None if not even the smallest)."""
    div = total_strides(arch)

    def fits(scale: float) -> bool:
        """True when the patch at scale fits the budget."""
        return _peak(arch, _capped(patch_at_scale(median_shape, scale, div), max_shape, div), ctx) <= budget_bytes

    if not fits(0.0):
        return None
    low, high = 0.0, 1.0
    while fits(high) and high < 2 ** 12:
        low, high = high, high * 2
    for _ in range(40):
        mid = (low + high) / 2
        low, high = (mid, high) if fits(mid) else (low, mid)
    return _capped(patch_at_scale(median_shape, low, div), max_shape, div)


def _capped(patch: list[int], max_shape: list[int] | None, div: list[int]) -> list[int]:
    """Limit a patch to max_shape (rounded up to the divisor) where given."""
    if max_shape is None:
        return patch
    return [min(p, math.ceil(m / d) * d) for p, m, d in zip(patch, max_shape, div)]


def scale_depth(arch: dict, multiplier: int) -> dict:
    """arch with every stage's encoder and decoder block count multiplied."""
    scaled = copy.deepcopy(arch)
    scaled["blocks_per_stage"] = [max(1, b) * multiplier for b in arch["blocks_per_stage"]]
    scaled["decoder_blocks_per_stage"] = [max(1, b) * multiplier for b in arch["decoder_blocks_per_stage"]]
    return scaled


def scale_width(arch: dict, eighths: int) -> dict:
    """arch with features multiplied by eighths/8, rounded down to multiples of 8 (>= 8)."""
    scaled = copy.deepcopy(arch)
    scaled["features_per_stage"] = [max(8, f * eighths // 8 // 8 * 8) for f in arch["features_per_stage"]]
    return scaled


def _largest_int(fits, low: int, high: int) -> int | None:
    """Largest integer in [low, high] for which the monotone predicate holds (None if none)."""
    if not fits(low):
        return None
    while low < high:
        mid = (low + high + 1) // 2
        low, high = (mid, high) if fits(mid) else (low, mid - 1)
    return low


def deepest(budget_bytes: int, arch: dict, patch: list[int], ctx: dict) -> dict | None:
    """The deepest depth-multiplied arch that fits at patch (None if even x1 does not)."""
    m = _largest_int(lambda k: _peak(scale_depth(arch, k), patch, ctx) <= budget_bytes, 1, MAX_DEPTH_MULTIPLIER)
    return None if m is None else scale_depth(arch, m)


def widest(budget_bytes: int, arch: dict, patch: list[int], ctx: dict) -> dict | None:
    """The widest width-multiplied arch that fits at patch (None if even the narrowest does not)."""
    k = _largest_int(lambda e: _peak(scale_width(arch, e), patch, ctx) <= budget_bytes, 1, MAX_WIDTH_EIGHTHS)
    return None if k is None else scale_width(arch, k)


def variants(arch: dict) -> dict[str, dict]:
    """The entry in each mode its family compares (revmbconv: reversible and plain; others: plain only)."""
    family = family_of(arch)
    return {mode: family.with_mode(arch, mode) for mode in family.compared_modes}


def search_configuration(budget_bytes: int, base_arch: dict, median_shape: list[int], patch_size: list[int],
                         batch_size: int, in_channels: int, num_outputs: int, dtype_bytes: int = 4,
                         optimizer: str = "sgd", max_shape: list[int] | None = None,
                         memory_model: MemoryModel | None = None) -> dict[str, dict]:
    """Per mode: the largest patch (base depth/width), deepest and widest arch (at patch_size) within budget."""
    ctx = {"batch_size": batch_size, "in_channels": in_channels, "num_outputs": num_outputs,
           "dtype_bytes": dtype_bytes, "optimizer": optimizer, "memory_model": memory_model}
    result = {}
    searches_shape = not family_of(base_arch).measured_memory   # a measured family: one measurement per entry
    for mode, arch in variants(base_arch).items():
        patch = largest_patch(budget_bytes, arch, median_shape, ctx, max_shape)
        deep = deepest(budget_bytes, arch, patch_size, ctx) if searches_shape else None
        wide = widest(budget_bytes, arch, patch_size, ctx) if searches_shape else None
        result[mode] = {
            "largest_patch": patch, "largest_patch_voxels": math.prod(patch) if patch else 0,
            "deepest_blocks_per_stage": deep["blocks_per_stage"] if deep else None,
            "deepest_decoder_blocks_per_stage": deep["decoder_blocks_per_stage"] if deep else None,
            "widest_features_per_stage": wide["features_per_stage"] if wide else None,
            "base_peak_bytes": _peak(arch, patch_size, ctx),
        }
    return result


def tradeoff_rows(budget_bytes: int, base_arch: dict, median_shape: list[int], patch_size: list[int],
                   batch_size: int, in_channels: int, num_outputs: int, **kwargs) -> list[dict]:
    """Rows (one per mode) of search_configuration, for plans.json and printing."""
    found = search_configuration(budget_bytes, base_arch, median_shape, patch_size, batch_size, in_channels,
                                 num_outputs, **kwargs)
    return [{"mode": mode, "budget_bytes": int(budget_bytes), **row} for mode, row in found.items()]


def tradeoff_table(entry: Configuration, budget_bytes: int, in_channels: int, num_outputs: int,
                   memory_model: MemoryModel | None = None) -> str:
    """Printable 'for the budget: largest patch, deepest, widest, reversible vs plain' for a plans configuration."""
    rows = tradeoff_rows(int(budget_bytes), entry.architecture.as_dict(), list(entry.median_shape or entry.patch_size),
                         list(entry.patch_size), entry.batch_size, in_channels, num_outputs,
                         memory_model=memory_model)
    if memory_model is not None and memory_model.device == "cuda":
        for row in rows:
            row["priced_for"] = "cuda"
    return format_tradeoff_table(rows)


def format_tradeoff_table(rows: list[dict]) -> str:
    """The table `segkit plan` prints: largest patch, deepest, widest per mode, and reversible/plain ratios."""
    if not rows:
        return ""
    budget = rows[0]["budget_bytes"]
    priced = " on CUDA, reserve included" if rows[0].get("priced_for") == "cuda" else ""
    lines = [f"for the budget of {budget / 2 ** 30:.2f} GiB (predicted peak of one training step{priced}):",
             f"{'mode':<11} {'largest patch':<26} {'deepest blocks/stage':<28} {'widest features/stage'}"]
    for row in rows:
        patch = "x".join(map(str, row["largest_patch"])) + f" ({row['largest_patch_voxels']:,})" \
            if row["largest_patch"] else "does not fit"
        lines.append(f"{row['mode']:<11} {patch:<26} {str(row['deepest_blocks_per_stage'] or '-'):<28} "
                     f"{row['widest_features_per_stage'] or '-'}")
    by_mode = {row["mode"]: row for row in rows}
    if {"reversible", "plain"} <= set(by_mode) and all(by_mode[m]["deepest_blocks_per_stage"] for m in by_mode):
        rev, plain = by_mode["reversible"], by_mode["plain"]
        lines.append(f"reversible / plain: {_ratio(rev['largest_patch_voxels'], plain['largest_patch_voxels'])} patch "
                     f"volume, {_ratio(rev['deepest_blocks_per_stage'][0], plain['deepest_blocks_per_stage'][0])} "
                     f"blocks, {_ratio(rev['widest_features_per_stage'][0], plain['widest_features_per_stage'][0])} "
                     "channels")
    return "\n".join(lines)


def _ratio(a: float, b: float) -> str:
    """a/b as '3.2x' (or '-' when b is 0)."""
    return f"{a / b:.1f}x" if b else "-"
