"""The training time budget as an object: `TimeBudget` (--time-budget) and its no-budget twin `NoBudget`.

Both answer the trainer's three questions, so the loop has no budget branches:
- `calibrate(time_steps, time_validation, recipe, validate_every, info)`: the schedule
  (epochs x iterations). NoBudget: the recipe's. TimeBudget: times warm-up + timed real steps
  and one validation pass, then fits the schedule to what remains (schedule.fit_to_budget).
- `stop_stepping(schedule, info)`: checked after every step; True once the budget minus the
  validation time and the final reserve is spent. Under torchrun rank 0's clock decides and is
  broadcast, so every rank stops after the same step (DDP needs the same number of steps).
- `after_epoch(schedule, epochs_done, epoch_seconds, max_epochs)`: refits the epoch count to the
  measured epoch time; returns the log note of a change (the caller broadcasts rank 0's count).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from segkit.training import distributed as dd
from segkit.training.recipe import Recipe
from segkit.training.schedule import FINAL_RESERVE_S, Schedule, fit_to_budget, refit_epochs

CALIBRATION_WARMUP = 2
CALIBRATION_STEPS = 8
REFIT_WINDOW = 3                      # epochs whose mean time the refit uses


@dataclass
class NoBudget:
    """No time limit: the recipe's schedule, never cut, never refitted."""

    started_at: float = field(default_factory=time.monotonic)
    clock: Callable[[], float] = time.monotonic

    def elapsed(self) -> float:
        """Seconds since the command started."""
        return self.clock() - self.started_at

    def calibrate(self, time_steps, time_validation, recipe: Recipe, validate_every: int,
                  info: dd.DistInfo) -> Schedule:
        """The recipe's epochs x iterations (nothing is timed)."""
        return Schedule(recipe.epochs, recipe.iterations_per_epoch, validate_every)

    def stop_stepping(self, schedule: Schedule, info: dd.DistInfo) -> bool:
        """Never."""
        return False

    def after_epoch(self, schedule: Schedule, epochs_done: int, epoch_seconds: list[float], max_epochs: int) -> str | None:
        """Nothing to refit."""
        return None


@dataclass
class TimeBudget:
    """A wall-clock budget of budget_s seconds from started_at (the command's start)."""

    budget_s: float
    started_at: float = field(default_factory=time.monotonic)
    clock: Callable[[], float] = time.monotonic

    def elapsed(self) -> float:
        """Seconds since the command started."""
        return self.clock() - self.started_at

    def calibrate(self, time_steps: Callable[[int], list[float]], time_validation: Callable[[], object],
                  recipe: Recipe, validate_every: int, info: dd.DistInfo) -> Schedule:
        """Time real steps and one validation pass, then fit epochs x iterations to the remaining budget.

        time_steps(n) runs n steps and returns the clock after each; timing starts at the end of the
        warm-up steps, so the loader's process start is not counted as step time.
        """
        step_ends = time_steps(CALIBRATION_WARMUP + CALIBRATION_STEPS)
        per_step = (step_ends[-1] - step_ends[CALIBRATION_WARMUP - 1]) / CALIBRATION_STEPS
        start = self.clock()
        time_validation()
        validation_s = (self.clock() - start) / max(1, validate_every)
        per_step = dd.all_reduce_mean(per_step, info)
        schedule = fit_to_budget(self.budget_s - self.elapsed(), per_step, validation_s, recipe.epochs,
                                 recipe.iterations_per_epoch)
        schedule.budget_s, schedule.validate_every = self.budget_s, validate_every
        return schedule

    def deadline(self, schedule: Schedule) -> float:
        """Elapsed seconds after which stepping stops (the epoch's validation and the final save still fit)."""
        return self.budget_s - FINAL_RESERVE_S - (schedule.validation_s or 0.0)

    def stop_stepping(self, schedule: Schedule, info: dd.DistInfo) -> bool:
        """True once the deadline has passed (rank 0's clock for every rank)."""
        past = self.elapsed() > self.deadline(schedule)
        return bool(dd.broadcast_ints([int(past)], info)[0])

    def after_epoch(self, schedule: Schedule, epochs_done: int, epoch_seconds: list[float], max_epochs: int) -> str | None:
        """Refit schedule.epochs to the mean of the last epochs' times; the change's note, or None."""
        new_epochs = refit_epochs(schedule, epochs_done, self.budget_s - self.elapsed(),
                                  float(np.mean(epoch_seconds[-REFIT_WINDOW:])), max_epochs)
        if new_epochs == schedule.epochs:
            return None
        note = f"epochs {schedule.epochs} -> {new_epochs} (refitted to measured epoch time)"
        schedule.epochs = new_epochs
        return note


def make_budget(time_budget_s: float | None, started_at: float | None) -> TimeBudget | NoBudget:
    """TimeBudget for a positive budget, else NoBudget; both clocked from started_at (now when None)."""
    start = time.monotonic() if started_at is None else started_at
    return TimeBudget(time_budget_s, start) if time_budget_s else NoBudget(start)
