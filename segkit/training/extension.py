"""`segkit train --resume` with --epochs N or --time-budget M: the request extends (or shortens) the saved schedule.

Without this, a resumed run follows the schedule saved in its checkpoint, so a finished run
cannot continue. Rule (docs/cli/train.md): `--epochs N` sets the run's total to N epochs (it
must be more than the epochs already run); `--time-budget M` on a run that finished adds as many
epochs of the measured length as fit in M minutes (an unfinished run keeps its schedule and is
refitted to the new budget every epoch, as before). The poly learning-rate decay follows the new
total: it resumes where the longer schedule would be at this step. Each change is appended to
schedule.json's `extensions`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from segkit.errors import UserError
from segkit.jsonio import read_json, write_json
from segkit.training.schedule import FINAL_RESERVE_S, Schedule


def extend_schedule(sched: Schedule, epochs_done: int, requested_epochs: int | None, remaining_s: float | None,
                    epoch_seconds: list[float]) -> str | None:
    """Apply a resume request to the saved schedule in place; returns what changed (None: nothing)."""
    if requested_epochs is not None:
        if requested_epochs <= epochs_done:
            raise UserError(f"--resume --epochs {requested_epochs}: this run has already run {epochs_done} epochs; "
                            f"ask for more to extend it")
        if requested_epochs == sched.epochs:
            return None
        old, sched.epochs = sched.epochs, requested_epochs
        return f"epochs {old} -> {requested_epochs} (--resume --epochs)"
    if remaining_s is None or epochs_done < sched.epochs:
        return None
    mean_epoch_s = float(np.mean(epoch_seconds[-3:])) if epoch_seconds else 0.0
    if mean_epoch_s <= 0:
        raise UserError("--resume --time-budget: the checkpoint has no epoch times to fit more epochs; use --epochs")
    more = int(max(0.0, remaining_s - FINAL_RESERVE_S - (sched.validation_s or 0.0)) // mean_epoch_s)
    if more < 1:
        raise UserError(f"--resume --time-budget: not even one more epoch (~{mean_epoch_s:.0f} s) fits in the budget")
    old, sched.epochs = sched.epochs, epochs_done + more
    return f"epochs {old} -> {sched.epochs} (--resume --time-budget: {more} more epochs of ~{mean_epoch_s:.1f} s)"


def record_extension(fold_dir: Path, sched: Schedule, change: str, epochs_done: int) -> None:
    """Append the change to schedule.json's `extensions` and update its schedule fields."""
    path = fold_dir / "schedule.json"
    decided = read_json(path, "schedule file") if path.is_file() else {}
    extensions = list(decided.get("extensions", [])) + [{"at_epoch": epochs_done, "change": change}]
    write_json(path, decided | sched.to_dict() | {"extensions": extensions})


def resumed_recipe(fold_dir: Path, requested: str) -> str:
    """--recipe for a resumed run: with `auto`, the recipe the run started with (schedule.json), not a new choice.

    A resume with --time-budget would otherwise switch a run trained without a budget to the
    short CPU recipe (another optimiser, whose state cannot load from the checkpoint).
    """
    from segkit.training.recipe import RECIPES

    path = fold_dir / "schedule.json"
    if requested != "auto" or not path.is_file():
        return requested
    name = (read_json(path, "schedule file").get("recipe") or {}).get("name")
    return next((key for key, recipe in RECIPES.items() if recipe.name == name), requested)
