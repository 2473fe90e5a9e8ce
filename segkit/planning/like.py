"""`segkit plan DATASET --like SOURCE`: carry another plan's network to a new dataset (for fine-tuning).

SOURCE is a plans.json, a work dir (its plans.json), or what `segkit.models.resolve` resolves: a
model folder (`WORK/models/<config>`: its plans copy, i.e. what the model was trained with,
hardware fit included), an nnU-Net v2 model folder (its converted plans) or a model package `.zip`
(checksums verified first). Rule (docs/fine-tuning.md):

- adopted per configuration: architecture, patch size, target spacing, resampling, and per
  channel the normalisation entry of the source channel with the same name (case-insensitive);
- re-planned from the new dataset: labels, outputs and number of outputs, median shape, mirror
  axes, and the batch size (largest within the memory budget, nnU-Net's 5 % dataset cap); the
  predicted peak of the adopted network with the new channel and output counts is checked
  against the budget again and the plan is refused when even batch 2 does not fit;
- a target channel without a same-named source channel keeps its own planned normalisation
  when the source has a channel with that scheme (its weights are the mean over the source's
  channels at training time); otherwise the channels cannot be matched and the plan is refused;
- `plans["like"]` records the source, its plans' sha256 and the channel mapping.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from pathlib import Path

from segkit.errors import UserError
from segkit.io.dataset import DatasetInfo
from segkit.models.nnunet import is_nnunet_model_folder
from segkit.models.resolve import resolve_model
from segkit.models.unpack import is_model_package
from segkit.planning.device_memory import MemoryModel, memory_model_for
from segkit.planning.planner import (
    MIN_BATCH,
    case_directions,
    choose_batch,
    dataset_entries,
    median_resampled_shape,
    planned_normalization,
    set_mirror_axes,
)
from segkit.planning.run import planning_inputs
from segkit.planning.summary import format_bytes, plans_summary
from segkit.plans import (
    Configuration,
    Plans,
    canonical_orientation_of,
    channel_names_of,
    configuration_of,
    configurations_of,
    dataset_name_of,
    like_of,
    normalization_of,
    previous_stage_of,
    read_plans,
    write_plans,
)
from segkit.preprocessing.orientation import AS_STORED
from segkit.workdir import plans_path

ADOPTED_KEYS = ("architecture", "patch_size", "target_spacing", "resampling", "spatial_dims", "slice_axis",
                "batch_dice", "previous_stage")


@dataclass(frozen=True)
class LikeSource:
    """The plan to carry over and which of its configurations."""

    plans: Plans
    configurations: list[str]
    description: str
    path: Path


def frame_of(plans: Plans) -> str:
    """The array frame a plan feeds networks in: its canonical orientation, 'as_stored' for a plan made before the key."""
    frame = canonical_orientation_of(plans)
    return AS_STORED if frame is None else frame


LIKE_NEEDS = ("configurations", "channel_names", "normalization")   # what --like reads from the source plans


def _read_source(path: Path, what: str = "plans.json", source: Path | None = None) -> Plans:
    """The source's plans with the fields --like reads, else a UserError naming the file (or `source`)."""
    return read_plans(path, what, needs=LIKE_NEEDS, source=source)


def resolve_like_source(spec: str | Path) -> LikeSource:
    """SOURCE -> its plans: a plans.json, a work dir, or what `segkit.models.resolve` resolves (one configuration)."""
    path = Path(spec)
    if is_model_package(path):
        choice = resolve_model(path, decide=False)   # every member's checksum verified; a tampered package is refused
        name, model_dir = next(iter(choice.model_dirs.items()))
        plans = _read_source(plans_path(model_dir), source=path)
        return LikeSource(plans, [name], f"model package {path} (checksums verified)", path)
    if path.is_file():
        return LikeSource(_read_source(path, "plans file"), [], f"plans {path}", path)
    if not path.is_dir():
        raise UserError("--like source not found: give a plans.json, a work dir, a model folder or a model package .zip",
                        path)
    if any(child.name.startswith("fold_") for child in path.iterdir()):   # a model folder (segkit or nnU-Net)
        choice = resolve_model(path, decide=False)
        name, model_dir = next(iter(choice.model_dirs.items()))
        plans = _read_source(plans_path(model_dir), source=model_dir)
        kind = "nnU-Net model folder" if is_nnunet_model_folder(path) else "model folder"
        return LikeSource(plans, [name], f"{kind} {model_dir if kind == 'model folder' else path} ({name})", path)
    return LikeSource(_read_source(plans_path(path), "plans file", source=path), [], f"work dir {path}", path)


def match_normalization(source: Plans, target_names: list[str], own: list[dict], where: Path) -> tuple[list[dict], list[str]]:
    """Per target channel: the same-named source channel's normalisation, else its own when the scheme exists there."""
    source_names, source_norms = channel_names_of(source) or [], normalization_of(source) or []
    by_name = {str(n).strip().lower(): i for i, n in enumerate(source_names)}
    source_schemes = {n["scheme"] for n in source_norms}
    chosen, notes = [], []
    for name, planned in zip(target_names, own):
        index = by_name.get(name.strip().lower())
        if index is not None:
            chosen.append(copy.deepcopy(source_norms[index]))
            notes.append(f"{name} <- {source_names[index]} ({chosen[-1]['scheme']})")
        elif planned["scheme"] in source_schemes:
            chosen.append(planned)
            notes.append(f"{name}: no source channel of that name; own {planned['scheme']} normalisation, "
                         f"weights from the mean of the source channels")
        else:
            described = ", ".join(f"{n} ({m['scheme']})" for n, m in zip(source_names, source_norms))
            raise UserError(f"--like: channel {name!r} ({planned['scheme']} normalisation) cannot be matched to the "
                            f"source's channels [{described}]: no channel of that name and none normalised the same "
                            f"way; rename the channel in dataset.json if it is the same kind of image", where)
    return chosen, notes


def adopt_configuration(source: Configuration, fingerprint: dict, in_channels: int, num_outputs: int, budget: int,
                        labels: dict, where: Path, model: MemoryModel | None = None,
                        label_mode: str = "softmax") -> dict:
    """The source's configuration re-planned for the new data: median shape, batch, memory, mirror axes."""
    entry = source.stored(ADOPTED_KEYS)
    name, spatial_dims = source.name, source.spatial_dims
    median_shape = median_resampled_shape(fingerprint, list(source.target_spacing))
    arch, patch = source.architecture.as_dict(), list(source.patch_size)

    def price(arch_: dict, patch_: list[int], batch: int) -> dict:
        """Predicted peak of one training step with the new channel and output counts (the plan's memory model)."""
        return (model or MemoryModel()).price(arch_, list(patch_), batch, in_channels, num_outputs)

    smallest = price(arch, patch, MIN_BATCH)["total"]
    if smallest > budget:
        raise UserError(f"--like: configuration {name}'s network and patch {patch} need {format_bytes(smallest)} at "
                        f"batch {MIN_BATCH} with {in_channels} channel(s) and {num_outputs} outputs, over the budget "
                        f"of {format_bytes(budget)}; raise --gpu-memory or plan without --like", where)
    dataset_voxels = len(fingerprint["cases"]) * math.prod(median_shape)
    batch, memory = choose_batch(arch, patch, price, budget, dataset_voxels)
    entry.update({
        "median_shape": [int(v) for v in median_shape], "batch_size": int(batch),
        "mirror_axes": list(range(spatial_dims)),
        "memory": {"predicted_peak_bytes": int(memory["total"]), "budget_bytes": int(budget), "fits_budget": True,
                   "breakdown": {k: int(v) for k, v in memory.items() if k != "total" and isinstance(v, (int, float))}},
    })
    if "previous_stage" not in entry:   # a source entry without the key gets the planner's value
        entry["previous_stage"] = None
    # the directions as the network sees them (identity in the canonical frame), exactly as `plan` does
    return set_mirror_axes(entry, labels, case_directions(fingerprint), label_mode, source.slice_axis,
                           source.previous_stage)


def plan_like(info: DatasetInfo, fingerprint: dict, source: LikeSource, budget: int, device: str,
              configurations: tuple[str, ...]) -> dict:
    """plans.json for the dataset with the source's networks (see the module docstring)."""
    available = source.configurations or list(configurations_of(source.plans))
    chosen = [c for c in available if c in configurations]
    if not chosen:
        raise UserError(f"--like: the source has configuration(s) {available}, none of those requested "
                        f"({', '.join(configurations)})", source.path)
    data = dataset_entries(info, fingerprint)
    outputs, num_outputs, label_mode = data["outputs"], data["num_outputs"], data["label_mode"]
    model = memory_model_for(device)
    normalization, channel_map = match_normalization(source.plans, info.channel_list,
                                                     planned_normalization(info, fingerprint), source.path)
    for name in chosen:
        previous = previous_stage_of(source.plans, name)
        if previous and previous not in chosen:
            raise UserError(f"--like: {name} is a cascade stage refining {previous}; plan {previous} with it",
                            source.path)
    adopted = {name: configuration_of(source.plans, name) for name in chosen}
    entries = {name: adopt_configuration(entry, fingerprint,
                                         info.num_channels + (len(outputs) if entry.previous_stage else 0),
                                         num_outputs, budget, info.annotation_labels, source.path, model, label_mode)
               for name, entry in adopted.items()}
    return {
        **data, "normalization": normalization,
        "gpu_memory_bytes": int(budget), "device": device, "memory_model": model.describe(),
        "network": adopted[chosen[0]].architecture.family,
        "configurations": entries,
        "like": {"source": source.description, "source_dataset": dataset_name_of(source.plans),
                 "source_plans_sha256": source.plans.sha256(), "configurations": chosen,
                 "source_channels": channel_names_of(source.plans) or [],
                 "source_orientation": frame_of(source.plans), "channel_map": channel_map,
                 "adopted": ["architecture", "patch_size", "target_spacing", "resampling", "normalization by channel name"],
                 "re_planned": ["labels, ignore label and outputs", "canonical orientation", "median_shape",
                                "batch_size", "memory", "mirror_axes"]},
    }


def plan_like_and_write(dataset: Path, source_spec: str, work_dir: str | Path | None = None, num_workers: int = 1,
                        gpu_memory_gb: float | None = None,
                        configurations: tuple[str, ...] = ("3d_fullres", "2d", "3d_lowres"),
                        force: bool = False, verify: bool = False, device: str = "auto") -> tuple[dict, Path, str]:
    """Fingerprint the dataset, plan it like SOURCE, write plans.json; return plans, work dir and summary."""
    source = resolve_like_source(source_spec)
    info, work, fingerprint, budget, device = planning_inputs(dataset, work_dir, num_workers, gpu_memory_gb, verify,
                                                              force, device)
    plans = plan_like(info, fingerprint, source, budget, device, configurations)
    written = write_plans(plans_path(work), plans)
    like = like_of(written)
    summary = plans_summary(written) + (f"\n\nplanned like {like['source']} (dataset {like['source_dataset']}): "
                                      f"architecture, patch and spacing adopted; channels: {'; '.join(like['channel_map'])}")
    if like["source_orientation"] != frame_of(written):
        summary += (f"\nnote: the source was trained on arrays {like['source_orientation']} (planned before segkit "
                    f"reoriented images); this plan feeds them in {frame_of(written)}, as `segkit plan` "
                    f"would, so the fine-tuning also learns the new frame")
    return plans, work, summary
