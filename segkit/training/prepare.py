"""Resolve a `segkit train` invocation into a TrainSetup: plans, configuration, fold split, model dir, cases."""

from __future__ import annotations

import argparse
import copy
import shutil
import time
from pathlib import Path

import numpy as np
import torch

from segkit.errors import UserError
from segkit.jsonio import atomic_path, read_json, write_json
from segkit.training import distributed as dd
from segkit.training.checkpoint import plans_sha256
from segkit.training.precision import make_autocast, training_precision
from segkit.training.recipe import choose_recipe
from segkit.training.loader import open_case, preprocessed_case_ids, with_slice_axis_first
from segkit.training.setup import TrainSetup
from segkit.workdir import model_dir, plans_path, preprocessed_dir, resolve_work_dir

NUM_FOLDS = 5
SPLIT_SEED = 12345


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


def make_splits(case_ids: list[str], seed: int = SPLIT_SEED, num_folds: int = NUM_FOLDS) -> list[dict]:
    """Seeded k-fold split: [{"train": [...], "val": [...]}, ...]."""
    order = list(np.random.default_rng(seed).permutation(sorted(case_ids)))
    folds = [sorted(str(c) for c in order[k::num_folds]) for k in range(num_folds)]
    return [{"train": sorted(c for c in case_ids if c not in set(val)), "val": val} for val in folds]


def load_or_make_splits(path: Path, case_ids: list[str], write: bool) -> list[dict]:
    """Reuse splits.json when present (checking its cases exist), else create and save it."""
    if path.is_file():
        splits = read_json(path, "splits file")
        known = set(case_ids)
        if not isinstance(splits, list) or not all(isinstance(s, dict) and "train" in s and "val" in s for s in splits):
            raise UserError("splits file must be a list of {\"train\": [...], \"val\": [...]}", path)
        missing = sorted({c for s in splits for c in s["train"] + s["val"]} - known)
        if missing:
            raise UserError(f"splits name cases that are not preprocessed: {missing[:5]}", path)
        return splits
    if len(case_ids) < NUM_FOLDS:
        raise UserError(f"only {len(case_ids)} preprocessed cases, {NUM_FOLDS}-fold cross-validation needs "
                        f"{NUM_FOLDS}: train with -f all, or write your own splits.json", path)
    splits = make_splits(case_ids)
    if write:
        write_json(path, splits)
    return splits


def _configuration_entry(plans: dict, configuration: str, path: Path) -> dict:
    """The plans entry of a configuration, or a UserError listing the available ones."""
    configurations = plans.get("configurations") if isinstance(plans, dict) else None
    if not isinstance(configurations, dict):
        raise UserError("plans file has no 'configurations'", path)
    if configuration not in configurations:
        raise UserError(f"unknown configuration {configuration!r}; this plan has {sorted(configurations)}", path)
    entry = configurations[configuration]
    for key in ("patch_size", "batch_size", "architecture"):
        if key not in entry:
            raise UserError(f"configuration {configuration!r} lacks {key!r}", path)
    return entry


def _fitted_entry(args, plans: dict, entry: dict, models: Path, device_type: str, info: dd.DistInfo,
                  min_width: int = 8, precision: str = "fp32", startup_s: float = 0.0) -> dict:
    """The configuration entry to train: a previous fit of the same plan (shared by folds), a new fit, or the plan's."""
    copy_path = models / "plans.json"
    source_sha = plans_sha256(entry)
    if copy_path.is_file():
        previous = read_json(copy_path, "model plans copy").get("configurations", {}).get(args.configuration, {})
        fit = previous.get("training_fit")
        if fit and fit.get("source_plans_sha256") == source_sha:
            return previous
    if device_type != "cpu" or not args.time_budget or args.no_fit or info.enabled:
        return entry
    from segkit.networks import build_network
    from segkit.training.fitting import fit_to_cpu_budget
    autocast, _ = make_autocast(torch.device(device_type), precision)
    chosen, record = fit_to_cpu_budget(entry, plans["num_channels"], plans["num_outputs"], args.time_budget * 60,
                                       build_network, log=lambda m: print(m, flush=True), min_width=min_width,
                                       autocast=autocast, startup_s=startup_s)
    record["precision"] = precision
    if chosen is entry or record["chosen"] == "as planned":
        return entry
    chosen = copy.deepcopy(chosen)
    chosen["training_fit"] = record | {"source_plans_sha256": source_sha}
    return chosen


def _write_model_dir(models: Path, plans: dict, configuration: str, entry: dict, dataset: Path) -> None:
    """Copy plans.json (with the trained configuration entry) and dataset.json into the model dir."""
    plans_copy = copy.deepcopy(plans)
    plans_copy["configurations"][configuration] = entry
    write_json(models / "plans.json", plans_copy)
    dataset_json = dataset / "dataset.json"
    if dataset_json.is_file():
        with atomic_path(models / "dataset.json", suffix=".json") as tmp:
            shutil.copyfile(dataset_json, tmp)


def _open_cases(folder: Path, ids: list[str], plans: dict, entry: dict) -> list:
    """Open (memory-map) cases, slice axis first for 2D configurations."""
    cases = [open_case(folder, c, plans.get("num_channels")) for c in ids]
    if int(entry.get("spatial_dims", len(entry["patch_size"]))) == 2:
        cases = [with_slice_axis_first(c, int(entry.get("slice_axis", 0))) for c in cases]
    return cases


def prepare_setup(args: argparse.Namespace, info: dd.DistInfo, device_type: str, started: float) -> TrainSetup:
    """Everything `train` needs, checked; rank 0 writes the model dir files."""
    work = resolve_work_dir(args.dataset, args.work_dir)
    plans_file = Path(args.plans) if args.plans else plans_path(work)
    plans = read_json(plans_file, "plans file")
    entry = _configuration_entry(plans, args.configuration, plans_file)
    fold = parse_fold(args.fold)
    if args.epochs is not None and args.epochs < 1 or args.iterations_per_epoch is not None and args.iterations_per_epoch < 1:
        raise UserError("--epochs and --iterations-per-epoch must be at least 1")
    if args.time_budget is not None and args.time_budget <= 0:
        raise UserError("--time-budget must be a positive number of minutes")
    folder = preprocessed_dir(work, args.configuration)
    case_ids = preprocessed_case_ids(folder)
    models = model_dir(work, args.configuration)
    fold_dir = models / ("fold_all" if fold is None else f"fold_{fold}")
    if fold is None:
        train_ids = val_ids = case_ids
    else:
        splits = load_or_make_splits(models / "splits.json", case_ids, write=info.is_main)
        if fold >= len(splits):
            raise UserError(f"fold {fold} is out of range: splits.json has {len(splits)} folds", models / "splits.json")
        train_ids, val_ids = splits[fold]["train"], splits[fold]["val"]
    if args.resume and not (fold_dir / "checkpoint_latest.pt").is_file():
        raise UserError("--resume: no checkpoint_latest.pt to resume from", fold_dir)
    dd.barrier(info)
    train_cases = _open_cases(folder, train_ids, plans, entry)
    val_cases = _open_cases(folder, val_ids, plans, entry)
    recipe, recipe_reason = choose_recipe(getattr(args, "recipe", "auto"), device_type, args.time_budget)
    precision = training_precision("fp32" if args.no_amp else args.precision, device_type)
    entry = _fitted_entry(args, plans, entry, models, device_type, info, recipe.min_width, precision,
                          startup_s=time.monotonic() - started)
    if info.is_main:
        fold_dir.mkdir(parents=True, exist_ok=True)
        _write_model_dir(models, plans, args.configuration, entry, Path(args.dataset))
    dd.barrier(info)
    device = torch.device(f"cuda:{info.local_rank}" if device_type == "cuda" else device_type)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    augment = args.augment
    if augment == "auto":
        augment = "full" if args.no_fit else recipe.augment
    notes = [f"recipe {recipe.name} ({recipe_reason})",
             f"augmentation {augment}" + (f" (auto: recipe {recipe.name})" if augment != args.augment else ""),
             f"fold {args.fold}: {len(train_ids)} training / {len(val_ids)} validation cases",
             f"precision {precision}" + (f" (auto on {device_type})" if args.precision == "auto" and not args.no_amp else "")]
    if fold is None:
        notes.append("-f all: validation uses the training cases (in-sample Dice)")
    if "training_fit" in entry:
        notes.append(f"hardware fit: {entry['training_fit']['chosen']} (see models plans.json training_fit)")
    return TrainSetup(
        fold_dir=fold_dir, plans=plans, configuration=args.configuration, config_entry=entry,
        train_cases=train_cases, val_cases=val_cases, device=device, seed=args.seed, epochs=args.epochs,
        iterations_per_epoch=args.iterations_per_epoch,
        time_budget_s=args.time_budget * 60 if args.time_budget else None, started_at=started,
        early_stop=args.early_stop, validate_every=max(1, args.validate_every), resume=args.resume,
        precision=precision, compile=args.compile, channels_last=args.channels_last, num_workers=args.num_workers,
        augment=augment, elastic=args.elastic,
        batch_dice=args.batch_dice if args.batch_dice is not None else recipe.batch_dice, progress=not args.quiet,
        notes=notes, optimizer=recipe.optimizer, lr=recipe.lr, momentum=recipe.momentum,
        weight_decay=recipe.weight_decay, foreground_fraction=recipe.foreground_fraction,
        recipe=recipe.to_dict() | {"reason": recipe_reason})
