"""Readable text summaries of plans for the terminal."""

from __future__ import annotations

from segkit.planning.architecture import count_blocks
from segkit.planning.device_memory import summary_line
from segkit.plans import (
    Configuration,
    Plans,
    canonical_orientation_of,
    channel_names_of,
    configuration_of,
    configurations_of,
    dataset_name_of,
    ignore_label_of,
    label_mode_of,
    memory_model_of,
    normalization_of,
    num_channels_of,
    oblique_inputs_of,
    outputs_of,
    planned_budget_of,
    training_orientations_of,
)


def format_bytes(num_bytes: float) -> str:
    """Human-readable size in GiB/MiB."""
    if num_bytes >= 1024 ** 3:
        return f"{num_bytes / 1024 ** 3:.2f} GiB"
    return f"{num_bytes / 1024 ** 2:.1f} MiB"


def format_table(rows: list[tuple[str, str]]) -> str:
    """Two-column aligned table."""
    width = max(len(key) for key, _ in rows)
    return "\n".join(f"  {key.ljust(width)}  {value}" for key, value in rows)


def configuration_summary(entry: Configuration) -> str:
    """One configuration as a readable table."""
    arch = entry.architecture
    fmt = lambda values: " x ".join(f"{v:g}" for v in values)  # noqa: E731
    memory = entry.memory or {}
    rows = [
        ("target spacing (mm)", fmt(entry.target_spacing)),
        ("median shape", fmt(entry.median_shape or ())),
        ("patch size", fmt(entry.patch_size) + (f"  (2D, slicing axis {entry.slice_axis})"
                                                if entry.slice_axis is not None else "")),
        ("batch size", str(entry.batch_size)),
        ("network", f"{arch.family}{' (reversible)' if arch.marked_reversible else ''}, "
                    f"{arch.num_stages} stages, {count_blocks(arch.as_dict())} blocks"),
        ("features", ", ".join(map(str, arch.features_per_stage))),
        ("strides", " ".join("".join(map(str, s)) for s in arch.strides)),
        ("kernels", " ".join("".join(map(str, k)) for k in arch.kernel_sizes)),
        ("predicted peak", f"{format_bytes(memory['predicted_peak_bytes'])} of {format_bytes(memory['budget_bytes'])}"
                           + ("" if memory.get("fits_budget", True) else "  (DOES NOT FIT: smallest patch used)")),
    ]
    if entry.previous_stage:
        rows.insert(0, ("cascade", f"refines {entry.previous_stage}'s segmentation (one-hot, extra input channels)"))
    return f"{entry.name}\n{format_table(rows)}"


def plans_summary(plans: Plans) -> str:
    """All configurations of a plan, plus the dataset-level choices."""
    norms = ", ".join(f"{name}: {n['scheme']}{' (nonzero mask)' if n.get('use_nonzero_mask') else ''}"
                      for name, n in zip(channel_names_of(plans) or [], normalization_of(plans) or []))
    budget, device = planned_budget_of(plans)
    header = (f"dataset {dataset_name_of(plans)}: {num_channels_of(plans)} channel(s), "
              f"{len(outputs_of(plans))} {'regions' if label_mode_of(plans) == 'sigmoid' else 'classes'}, "
              f"budget {format_bytes(budget)} ({device})\n  normalisation: {norms}")
    if (memory_model := memory_model_of(plans)) is not None:
        header += "\n  " + summary_line(dict(memory_model))
    seen = training_orientations_of(plans).get("codes")
    stored = ", ".join(f"{code} x{count}" for code, count in seen.items()) if seen else "unknown"
    frame = canonical_orientation_of(plans)
    if frame == "LPS":
        header += (f"\n  orientation: every image reoriented to LPS (stored: {stored}); "
                   "per-axis values below are in that order")
        limit = oblique_inputs_of(plans).get("resample_above_degrees")
        if limit is not None:
            trained = training_orientations_of(plans)
            header += (f"\n  oblique inputs: training images {trained.get('min_oblique_degrees', 0.0):g}-"
                       f"{trained.get('max_oblique_degrees', 0.0):g} degrees off the patient axes; an input beyond "
                       f"{limit:g} is resampled onto the axis-aligned grid at prediction")
    else:
        header += f"\n  orientation: arrays fed as stored ({frame or 'legacy plan without canonical_orientation'})"
    if (ignore := ignore_label_of(plans)) is not None:
        header += f"\n  sparse annotation: label {ignore} = ignore (unannotated, never an output)"
    return "\n\n".join([header] + [configuration_summary(configuration_of(plans, name))
                                    for name in configurations_of(plans)])
