"""Resolve a `segkit train` invocation into a TrainSetup: plans, configuration, fold split, model dir, cases."""

from __future__ import annotations

import dataclasses
import shutil
import time
from pathlib import Path

import torch

from segkit.errors import UserError
from segkit.io.dataset import load_dataset
from segkit.jsonio import atomic_path
from segkit.networks import build_network
from segkit.planning.mirroring import anatomical_mirror_axes, without_pair_swap
from segkit.plans import (
    SWAP_KEY,
    Configuration,
    Plans,
    read_plans,
    with_configuration,
    write_plans,
)
from segkit.training import distributed as dd
from segkit.training import memory_backoff
from segkit.training.cascade import cascade_splits, previous_label_maps, with_previous
from segkit.training.extension import resumed_recipe
from segkit.training.fitting import fit_to_cpu_budget
from segkit.training.loader import (
    open_case,
    preprocessed_case_ids,
    with_slice_axis_first,
)
from segkit.training.precision import auto_note, make_autocast, training_precision
from segkit.training.pretrained import finetune_from_args, finetune_recipe
from segkit.training.recipe import Recipe, choose_recipe
from segkit.training.request import TrainRequest
from segkit.training.setup import TrainSetup
from segkit.training.splits import NUM_FOLDS, load_or_make_splits
from segkit.workdir import (
    checkpoint_path,
    model_dataset_path,
    model_dir,
    plans_path,
    preprocessed_dir,
    resolve_work_dir,
    splits_path,
)
from segkit.workdir import fold_dir as fold_path


def parse_fold(text: str) -> int | None:
    """Fold index, or None for 'all'; anything else is a UserError."""
    if str(text).lower() == "all":
        return None
    try:
        fold = int(text)
    except ValueError:
        raise UserError(f"fold must be 0..{NUM_FOLDS - 1} or 'all', got {text!r}") from None
    if not 0 <= fold < NUM_FOLDS:
        raise UserError(f"fold {fold} is out of range: choose 0..{NUM_FOLDS - 1} or 'all'")
    return fold


def _previous_fit(models: Path, configuration: str, source_sha: str) -> Configuration | None:
    """The model dir's fitted entry of the same plan (shared by folds and resumes), if any."""
    copy_path = plans_path(models)
    if not copy_path.is_file():
        return None
    previous = read_plans(copy_path, "model plans copy").configurations.get(configuration)
    if previous is None:
        return None
    for record in (previous.memory_fit, previous.training_fit):
        if record is not None and record.get("source_plans_sha256") == source_sha:
            return previous
    return None


def _cpu_fitted_entry(request: TrainRequest, plans: Plans, entry: Configuration, device_type: str, info: dd.DistInfo,
                      min_width: int, precision: str, startup_s: float = 0.0) -> Configuration:
    """The entry shrunk for a short CPU time budget (fitting.py, startup_s already spent), or the plan's."""
    if device_type != "cpu" or not request.time_budget_min or not request.fit or info.enabled:
        return entry
    if request.pretrained or request.resume:   # a fit would change the architecture the weights belong to
        return entry
    autocast, _ = make_autocast(torch.device(device_type), precision)
    chosen, record = fit_to_cpu_budget(entry, plans.in_channels(entry.name), plans.num_outputs,
                                       request.time_budget_min * 60,
                                       build_network, log=lambda m: print(m, flush=True), min_width=min_width,
                                       autocast=autocast, startup_s=startup_s)
    record["precision"] = precision
    if chosen is entry or record["chosen"] == "as planned":
        return entry
    return chosen.replace(training_fit=record)


def _memory_fitted_entry(plans: Plans, entry: Configuration, recipe: Recipe, device: torch.device,
                         precision: str, info: dd.DistInfo) -> tuple[Configuration, dict | None]:
    """The entry after the out-of-memory back-off (memory_backoff.py) on CUDA (unchanged when it fits), and the probe's record."""
    if device.type not in memory_backoff.PROBE_DEVICE_TYPES:
        return entry, None
    autocast, _ = make_autocast(device, precision)

    def probe(candidate: Configuration) -> dict:
        """The probe steps at this rank's share of the candidate's batch."""
        return memory_backoff.probe_step(candidate, plans.in_channels(entry.name), plans.num_outputs,
                                         plans.label_mode, recipe,
                                         dd.per_rank_batch_size(candidate.batch_size, info), device, autocast,
                                         build_network)

    def agree(fits: bool) -> bool:
        """Every rank's probe must fit."""
        return dd.all_reduce_sum(torch.tensor([0 if fits else 1]), info).item() == 0

    chosen, record = memory_backoff.back_off(entry, probe, device, agree, lambda m: print(m, flush=True),
                                             min_batch=max(memory_backoff.MIN_BATCH, info.world_size))
    record["precision"] = precision
    if record["chosen"] == "as planned":
        return entry, record
    return chosen.replace(memory_fit=record), record


def _mirrored_entry(plans: Plans, entry: Configuration, recipe: Recipe) -> tuple[Configuration, str | None]:
    """The entry with the recipe's mirror axes, and why; the model dir's plans carry them so TTA mirrors alike."""
    why = None
    if recipe.mirroring == "anatomical":
        axes, why, swap_axis = anatomical_mirror_axes(plans, entry)
        if axes != list(entry.mirror_axes) or swap_axis != entry.mirror_swap_axis:
            entry = entry.replace(drop=(SWAP_KEY,), mirror_axes=axes, mirror_note=why)
            if swap_axis is not None:
                entry = entry.replace(mirror_swap_axis=swap_axis)
    if not recipe.swap_pairs:
        entry, no_swap = without_pair_swap(entry)
        why = no_swap or why
    return entry, why


def _write_model_dir(models: Path, plans: Plans, entry: Configuration, dataset: Path) -> None:
    """Copy plans.json (with the trained configuration entry) and dataset.json into the model dir."""
    write_plans(plans_path(models), with_configuration(plans, entry))
    dataset_json = dataset / "dataset.json"
    if dataset_json.is_file():
        with atomic_path(model_dataset_path(models), suffix=".json") as tmp:
            shutil.copyfile(dataset_json, tmp)


def _open_cases(folder: Path, ids: list[str], plans: Plans, entry: Configuration) -> list:
    """Open (memory-map) cases, slice axis first for 2D configurations."""
    cases = [open_case(folder, c, plans.num_channels) for c in ids]
    slice_axis = entry.slice_axis
    if slice_axis is not None:
        cases = [with_slice_axis_first(c, slice_axis) for c in cases]
    return cases


def _recipe(request: TrainRequest, device_type: str, fold_dir: Path) -> tuple[Recipe, str, dict]:
    """The recipe for this device and budget with the user's overrides, why, and the overridden fields.

    A resumed run keeps the recipe it started with (`--recipe auto` reads it from schedule.json).
    """
    requested = resumed_recipe(fold_dir, request.recipe) if request.resume else request.recipe
    recipe, reason = choose_recipe(requested, device_type, request.time_budget_min)
    if requested != request.recipe:
        reason = "the resumed run's recipe (schedule.json)"
    overrides = {k: v for k, v in request.recipe_overrides.items() if v is not None}
    if "augment" not in overrides and not request.fit:
        recipe = recipe.override({"augment": "full"})      # --no-fit trains the plan as nnU-Net would
    return recipe.override(overrides), reason, overrides


def predicts_validation(request: TrainRequest, plans: Plans, fold: int | None) -> bool:
    """Whether the run ends by predicting its fold's validation cases: as asked, else for both stages of a cascade.

    The previous stage's are the cascade's training input; the cascade's feed find-best.
    """
    if fold is None:
        return False
    if request.predict_validation is not None:
        return request.predict_validation
    return plans.configuration(request.configuration).previous_stage is not None or any(
        entry.previous_stage == request.configuration for entry in plans.configurations.values())


@dataclasses.dataclass
class _Plan:
    """Phase 1: the work dir and the configuration's plans entry."""

    work: Path
    plans: Plans
    entry: Configuration


@dataclasses.dataclass
class _Split:
    """Phase 2: the fold, its cases and folders (a cascade stage: the previous stage's split)."""

    fold: int | None
    folder: Path
    models: Path
    fold_dir: Path
    previous_stage: str | None
    splits: list[dict]
    train_ids: list[str]
    val_ids: list[str]


def _read_plan(request: TrainRequest) -> _Plan:
    """The work dir, plans.json and the configuration's entry; UserError when planning has not run."""
    work = resolve_work_dir(request.dataset, request.work_dir)
    plans_file = Path(request.plans) if request.plans else plans_path(work)
    if not request.plans and not plans_file.is_file():
        raise UserError(f"plans.json not found in {work}: run `segkit plan {request.dataset}` and "
                        f"`segkit preprocess {request.dataset} -c {request.configuration}` first")
    plans = read_plans(plans_file)
    return _Plan(work, plans, plans.configuration(request.configuration))


def _split(request: TrainRequest, info: dd.DistInfo, plan: _Plan, fold: int | None) -> _Split:
    """The fold's training and validation case ids (every case for -f all); rank 0 writes splits.json."""
    folder = preprocessed_dir(plan.work, request.configuration)
    case_ids = preprocessed_case_ids(folder)
    models = model_dir(plan.work, request.configuration)
    previous_stage = plan.entry.previous_stage
    splits: list[dict] = []
    if previous_stage is not None:
        splits = cascade_splits(plan.work, request.configuration, previous_stage, case_ids, write=info.is_main)
    if fold is None:
        train_ids = val_ids = case_ids
    else:
        if previous_stage is None:
            splits = load_or_make_splits(splits_path(models), case_ids, write=info.is_main)
        if fold >= len(splits):
            raise UserError(f"fold {fold} is out of range: splits.json has {len(splits)} folds", splits_path(models))
        train_ids, val_ids = splits[fold]["train"], splits[fold]["val"]
    return _Split(fold, folder, models, fold_path(models, fold), previous_stage, splits, train_ids, val_ids)


def _cases(request: TrainRequest, plan: _Plan, split: _Split) -> tuple[list, list]:
    """The opened training and validation cases (a cascade stage's: with the previous stage's label maps)."""
    train_cases = _open_cases(split.folder, split.train_ids, plan.plans, plan.entry)
    val_cases = _open_cases(split.folder, split.val_ids, plan.plans, plan.entry)
    if split.previous_stage is not None:   # a cascade stage: the previous stage's held-out predictions of every case
        label_maps = previous_label_maps(plan.work, request.configuration, split.previous_stage, split.splits,
                                         sorted({*split.train_ids, *split.val_ids}),
                                         load_dataset(request.dataset).file_ending)
        train_cases = [with_previous(c, label_maps[c.case_id], plan.plans) for c in train_cases]
        val_cases = [with_previous(c, label_maps[c.case_id], plan.plans) for c in val_cases]
    return train_cases, val_cases


def _fitted_entry(request: TrainRequest, plan: _Plan, split: _Split, recipe: Recipe, device_type: str,
                  device: torch.device, precision: str, info: dd.DistInfo,
                  started: float) -> tuple[Configuration, dict | None]:
    """The entry this run trains: the model dir's earlier fit of the same plan, else fitted to CPU and memory now."""
    source_sha = plan.entry.sha256()
    previous = _previous_fit(split.models, request.configuration, source_sha)
    if previous is not None:
        return previous, None
    entry = _cpu_fitted_entry(request, plan.plans, plan.entry, device_type, info, recipe.min_width, precision,
                              startup_s=time.monotonic() - started)
    entry, probe = _memory_fitted_entry(plan.plans, entry, recipe, device, precision, info)
    source = {"source_plans_sha256": source_sha}
    if entry.training_fit is not None:
        entry = entry.replace(training_fit={**entry.training_fit, **source})
    if entry.memory_fit is not None:
        entry = entry.replace(memory_fit={**entry.memory_fit, **source})
    return entry, probe


def _notes(request: TrainRequest, split: _Split, recipe: Recipe, recipe_reason: str, overrides: dict, lr_note: str,
           finetune, precision: str, device_type: str, device: torch.device, entry: Configuration, mirror_note: str | None,
           probe: dict | None) -> list[str]:
    """The lines the run prints about how it was set up."""
    notes = [f"recipe {recipe.name} ({recipe_reason})" + (f", overrides {overrides}" if overrides else ""),
             *([f"cascade: input + {split.previous_stage}'s cross-validation segmentation (one-hot)"]
               if split.previous_stage else []),
             f"augmentation {recipe.augment}" + ("" if "augment" in overrides else f" (auto: recipe {recipe.name})"),
             f"fold {request.fold}: {len(split.train_ids)} training / {len(split.val_ids)} validation cases",
             f"precision {precision}" + (f" ({auto_note(device_type)})" if request.precision == "auto" else "")]
    if split.fold is None:
        notes.append("-f all: validation uses the training cases (in-sample Dice)")
    notes.append(lr_note)
    if finetune:
        notes.append(f"fine-tuning from {finetune.source.description}; no hardware fit (the weights fix the architecture)")
    if mirror_note:
        notes.append(f"{mirror_note}: mirror_axes {list(entry.mirror_axes)} (training and the model's TTA)")
    if entry.training_fit is not None:
        notes.append(f"hardware fit: {entry.training_fit['chosen']} (see models plans.json training_fit)")
    if entry.memory_fit is not None:
        notes.append(f"out-of-memory back-off: {entry.memory_fit['chosen']} (see models plans.json memory_fit)")
    elif probe is not None:
        peaks = {k: v for k, v in probe["attempts"][-1].items() if k.startswith("max_memory")}
        notes.append(f"memory probe: the plan fits ({peaks or 'no allocator peaks on ' + device.type})")
    return notes


def prepare_setup(request: TrainRequest, info: dd.DistInfo, device_type: str, started: float) -> TrainSetup:
    """Everything `train` needs, checked; rank 0 writes the model dir files.

    Phases: read the plan / check the request / split the cases / choose the recipe / open the
    cases / place the device / fit the entry to this hardware / write the model dir / notes.
    """
    plan = _read_plan(request)
    fold = parse_fold(request.fold)
    finetune = finetune_from_args(request, request.configuration)   # resolves (and verifies) --pretrained SOURCE
    if request.time_budget_min is not None and request.time_budget_min <= 0:
        raise UserError("--time-budget must be a positive number of minutes")
    split = _split(request, info, plan, fold)
    if request.resume and not checkpoint_path(split.fold_dir, "latest").is_file():
        raise UserError("--resume: no checkpoint_latest.pt to resume from", split.fold_dir)
    recipe, recipe_reason, overrides = _recipe(request, device_type, split.fold_dir)
    if not request.resume and not request.overwrite and checkpoint_path(split.fold_dir, "final").is_file():
        # a finished fold is a trained model: replacing it silently loses days of GPU time
        # (checked after the recipe flags, so a mistaken flag is named first)
        raise UserError("this fold is already trained (checkpoint_final.pt): --resume extends it (with --epochs or "
                        "--time-budget), --overwrite trains it again from scratch", split.fold_dir)
    recipe, lr_note = finetune_recipe(recipe, overrides, finetune)
    finetune = dataclasses.replace(finetune, lr_note=lr_note) if finetune else None
    dd.barrier(info)
    train_cases, val_cases = _cases(request, plan, split)
    precision = training_precision(request.precision, device_type)
    device = dd.device_for(device_type, info)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    entry, probe = _fitted_entry(request, plan, split, recipe, device_type, device, precision, info, started)
    entry, mirror_note = _mirrored_entry(plan.plans, entry, recipe)
    if info.is_main:
        split.fold_dir.mkdir(parents=True, exist_ok=True)
        _write_model_dir(split.models, plan.plans, entry, Path(request.dataset))
    dd.barrier(info)
    notes = _notes(request, split, recipe, recipe_reason, overrides, lr_note, finetune, precision, device_type, device,
                   entry, mirror_note, probe)
    return TrainSetup(
        fold_dir=split.fold_dir, plans=plan.plans, configuration=entry,
        train_cases=train_cases, val_cases=val_cases, device=device, recipe=recipe, recipe_reason=recipe_reason,
        recipe_overrides=overrides, seed=request.seed, time_budget_s=request.time_budget_s, started_at=started,
        early_stop=request.early_stop, validate_every=max(1, request.validate_every), resume=request.resume,
        precision=precision, speed=request.speed, num_workers=request.num_workers, progress=request.progress,
        notes=notes, finetune=finetune, predict_validation=predicts_validation(request, plan.plans, fold))
