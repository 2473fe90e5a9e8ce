"""`segkit choose-pruning`: the UNet++ inference pruning level, chosen on the validation cases.

UNet++ (segkit/networks/families/unetpp.py) can predict with any of its nested full-resolution outputs
X^{0,j}, j = 1..L; the sub-network for X^{0,j} runs only the nodes i + j' <= j, so shallower levels
are faster. Every fold's checkpoint scores every level on that fold's validation cases (the
preprocessed arrays, the per-epoch validation's sliding window: segkit.training.validation), Dice
per class from TP/FP/FN summed over the folds' cases, and the time each level took. The chosen
level is the shallowest whose mean Dice is within `tolerance` of the best level's; it goes to the
model folder's pruning.json (owner: segkit.models.pruning), which prediction honours.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from segkit.errors import UserError
from segkit.inference.model import LoadedModel, load_model
from segkit.models.pruning import write_pruning
from segkit.plans import ignore_label_of, output_label_values
from segkit.training.loader import Case, open_case, with_slice_axis_first
from segkit.training.losses import build_loss
from segkit.training.splits import read_splits
from segkit.training.targets import SegToTarget
from segkit.training.validation import dice_from_counts, validate
from segkit.workdir import is_work_dir, preprocessed_dir, splits_path

DEFAULT_TOLERANCE = 0.005


def _work_cases(loaded: LoadedModel, case_ids: list[str]) -> list[Case]:
    """Preprocessed cases of the model's work dir (slice axis first for 2D)."""
    work = loaded.model_dir.parent.parent
    if not is_work_dir(work):
        raise UserError("choose-pruning needs the model folder inside its work dir (WORK/models/<config>) "
                        "for the preprocessed cases", loaded.model_dir)
    folder = preprocessed_dir(work, loaded.configuration)
    cases = [open_case(folder, case_id, loaded.num_channels) for case_id in case_ids]
    slice_axis = loaded.entry.slice_axis
    return [with_slice_axis_first(c, slice_axis) for c in cases] if slice_axis is not None else cases


def validation_cases(loaded: LoadedModel, fold: str) -> list[Case]:
    """A fold's validation cases from the work dir's preprocessed folder (slice axis first for 2D)."""
    if fold == "all":
        raise UserError("fold 'all' was trained on every case and has no validation cases; pass -f with "
                        "cross-validation folds", loaded.model_dir)
    splits = read_splits(splits_path(loaded.model_dir))
    if int(fold) >= len(splits):
        raise UserError(f"fold {fold} is out of range: splits.json has {len(splits)} folds",
                        splits_path(loaded.model_dir))
    return _work_cases(loaded, splits[int(fold)]["val"])


def score_levels(loaded: LoadedModel, levels: list[int], case_ids: list[str] | None = None) -> list[dict]:
    """Per level: Dice per output and its mean (TP/FP/FN summed over every fold's cases), seconds.

    A fold's cases are its validation cases, or, with case_ids, those preprocessed cases for every fold
    (held-out cases that no fold trained or validated on: the level's Dice away from where it was chosen).
    """
    network, entry, plans = loaded.network, loaded.entry, loaded.plans
    regions = list(output_label_values(plans).values())
    to_target = SegToTarget(loaded.label_mode, regions, ignore_label_of(plans))
    loss_fn = build_loss(loaded.label_mode, 1)
    totals: dict[int, dict] = {}
    cases_seen = 0
    for fold, state in zip(loaded.folds, loaded.fold_states):
        network.load_state_dict(state)
        cases = validation_cases(loaded, fold) if case_ids is None else _work_cases(loaded, case_ids)
        cases_seen += len(cases)
        for level in levels:
            network.prune_level = level   # type: ignore[assignment]  # a plain attribute
            started = time.perf_counter()
            counts = validate(network, cases, list(entry.patch_size), entry.spatial_dims, loaded.num_outputs,
                              loaded.label_mode, lambda seg: to_target(seg=seg)["target"], loss_fn, loaded.device)
            seconds = time.perf_counter() - started
            total = totals.setdefault(level, {"tp": 0, "fp": 0, "fn": 0, "seconds": 0.0})
            for key in ("tp", "fp", "fn"):
                total[key] = total[key] + counts[key]
            total["seconds"] += seconds
    rows = []
    for level in levels:
        total = totals[level]
        dice = dice_from_counts(torch.as_tensor(total["tp"]), torch.as_tensor(total["fp"]),
                                torch.as_tensor(total["fn"]))
        present = [d for d in dice if d is not None]
        rows.append({"level": level, "mean_dice": sum(present) / len(present) if present else 0.0,
                     "dice": dice, "seconds": round(total["seconds"], 3), "cases": cases_seen})
    return rows


def choose_level(rows: list[dict], tolerance: float) -> int:
    """The shallowest level whose mean Dice is within tolerance of the best level's."""
    best = max(row["mean_dice"] for row in rows)
    return min(row["level"] for row in rows if row["mean_dice"] >= best - tolerance)


def choose_pruning(model: str | Path, configuration: str | None = None, folds: list[str] | None = None,
                   checkpoint: str = "final", tolerance: float = DEFAULT_TOLERANCE,
                   device: str = "auto") -> tuple[dict, Path]:
    """Score every pruning level of a UNet++ model folder on validation, write pruning.json; the record, its path."""
    if tolerance < 0:
        raise UserError(f"--tolerance must be >= 0, got {tolerance}")
    loaded = load_model(model, configuration, folds, checkpoint, device)
    depth = getattr(loaded.network, "depth", None)
    if not hasattr(loaded.network, "prune_level") or not isinstance(depth, int):
        family = loaded.entry.architecture.family
        raise UserError(f"choose-pruning needs a prunable network (unetpp); this model is {family!r}",
                        loaded.model_dir)
    rows = score_levels(loaded, list(range(1, depth + 1)))
    record = {"prune_level": choose_level(rows, tolerance), "depth": depth, "tolerance": tolerance,
              "levels": rows, "folds": list(loaded.folds), "checkpoint": checkpoint,
              "cases": rows[0]["cases"] if rows else 0}
    return record, write_pruning(loaded.model_dir, record)


def format_levels(record: dict) -> str:
    """The level table choose-pruning prints: level, mean Dice, seconds, relative time, the choice marked."""
    full = next(row for row in record["levels"] if row["level"] == record["depth"])
    lines = [f"{'level':>5}  {'mean Dice':>9}  {'seconds':>8}  {'time / full':>11}"]
    for row in record["levels"]:
        mark = "  <- chosen" if row["level"] == record["prune_level"] else ""
        ratio = row["seconds"] / full["seconds"] if full["seconds"] > 0 else float("nan")
        lines.append(f"{row['level']:>5}  {row['mean_dice']:>9.4f}  {row['seconds']:>8.2f}  {ratio:>11.2f}{mark}")
    return "\n".join(lines)
