"""The training time budget as an object: `TimeBudget` (--time-budget) and its no-budget twin `NoBudget`.

Both answer the trainer's questions, so the loop has no budget branches:
- `calibrate(time_steps, estimate_validation, recipe, validate_every, info, step_seconds)`: the
  schedule. NoBudget: the recipe's. TimeBudget: times warm-up + timed real steps, estimates one
  whole validation pass (validation.estimate_validation_seconds, nothing is run), then applies
  the pure rule schedule.fit_to_budget (>= 80 % of the whole budget in optimiser steps; the
  seconds spent so far outside steps are its overhead_s); rank 0's decision for every rank.
- `stop_stepping(schedule, info)`: checked after every step; True once the budget minus the
  scheduled validation's cost and the end reserve is spent (schedule.end_reserve: the fixed
  final reserve until an end-of-epoch save was timed, then the measured saves, exit and jitter). Under torchrun rank 0's clock
  decides and is broadcast, so every rank stops after the same step (DDP needs the same number
  of steps).
- `after_epoch(schedule, epochs_done, epoch_seconds, max_epochs)`: refits the epoch count to the
  measured epoch time; returns the log note of a change (the caller broadcasts rank 0's count).
- `final_record(step_seconds)`: what the budget adds to the run's final record (the step share).
- `note_bookkeeping(seconds)` / `note_validation(seconds)`: the measured cost of an end-of-epoch
  save and of a validation, which replace the fixed reserve and the estimate at the budget's end.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from segkit.training import distributed as dd
from segkit.training.recipe import Recipe
from segkit.training.schedule import Schedule, end_reserve, fit_to_budget, refit_to_budget_end

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

    def calibrate(self, time_steps, estimate_validation, recipe: Recipe, validate_every: int,
                  info: dd.DistInfo, step_seconds: Callable[[], float] = lambda: 0.0) -> Schedule:
        """The recipe's epochs x iterations (nothing is timed)."""
        return Schedule(recipe.epochs, recipe.iterations_per_epoch, validate_every)

    def stop_stepping(self, schedule: Schedule, info: dd.DistInfo) -> bool:
        """Never."""
        return False

    def after_epoch(self, schedule: Schedule, epochs_done: int, epoch_seconds: list[float], max_epochs: int) -> str | None:
        """Nothing to refit."""
        return None

    def final_record(self, step_seconds: float) -> dict:
        """Nothing beyond the loop's own record."""
        return {}

    def note_bookkeeping(self, seconds: float) -> None:
        """Nothing to plan for."""

    def note_validation(self, seconds: float) -> None:
        """Nothing to plan for."""


@dataclass
class TimeBudget:
    """A wall-clock budget of budget_s seconds from started_at (the command's start)."""

    budget_s: float
    started_at: float = field(default_factory=time.monotonic)
    clock: Callable[[], float] = time.monotonic
    bookkeeping_s: float | None = None   # longest measured end-of-epoch save (checkpoints, log, picture)
    validation_measured_s: float | None = None   # longest measured validation as scheduled (replaces the estimate)

    def elapsed(self) -> float:
        """Seconds since the command started."""
        return self.clock() - self.started_at

    def calibrate(self, time_steps: Callable[[int], list[float]], estimate_validation: Callable[[], float],
                  recipe: Recipe, validate_every: int, info: dd.DistInfo,
                  step_seconds: Callable[[], float] = lambda: 0.0) -> Schedule:
        """Time real steps, estimate one validation pass, then fit the schedule to the budget (fit_to_budget).

        time_steps(n) runs n steps and returns the clock after each; timing starts at the end of the
        warm-up steps, so the loader's process start is not counted as step time. step_seconds()
        is the time spent inside optimiser steps so far (the calibration steps count as steps);
        everything else elapsed is start-up overhead the 80 % rule must absorb.
        """
        step_ends = time_steps(CALIBRATION_WARMUP + CALIBRATION_STEPS)
        per_step = (step_ends[-1] - step_ends[CALIBRATION_WARMUP - 1]) / CALIBRATION_STEPS
        validation_s = float(estimate_validation())
        per_step = dd.all_reduce_mean(per_step, info)
        validation_s = dd.all_reduce_mean(validation_s, info)
        elapsed = self.elapsed()
        schedule = fit_to_budget(self.budget_s - elapsed, per_step, validation_s, recipe.epochs,
                                 recipe.iterations_per_epoch, budget_s=self.budget_s,
                                 overhead_s=max(0.0, elapsed - step_seconds()), validate_every=validate_every)
        return agree(schedule, info)

    def end_reserve(self) -> float:
        """Seconds kept after the last step: measured saves + exit + jitter once a save was timed (schedule.end_reserve)."""
        return end_reserve(self.budget_s, self.bookkeeping_s)

    def deadline(self, schedule: Schedule) -> float:
        """Elapsed seconds after which stepping stops (the epoch's validation, its save and the final save still fit).

        The validation counts at its longest measured time once one ran, else at the schedule's estimate.
        """
        validation_s = schedule.validation_cost_s if self.validation_measured_s is None else self.validation_measured_s
        return self.budget_s - self.end_reserve() - validation_s

    def note_bookkeeping(self, seconds: float) -> None:
        """Record how long an end-of-epoch save took (the deadline keeps room for two as slow as the slowest)."""
        self.bookkeeping_s = max(self.bookkeeping_s or 0.0, float(seconds))

    def note_validation(self, seconds: float) -> None:
        """Record how long a validation as scheduled took (the deadline keeps room for one as slow as the slowest)."""
        self.validation_measured_s = max(self.validation_measured_s or 0.0, float(seconds))

    def stop_stepping(self, schedule: Schedule, info: dd.DistInfo) -> bool:
        """True once the deadline has passed (rank 0's clock for every rank)."""
        past = self.elapsed() > self.deadline(schedule)
        return bool(dd.broadcast_ints([int(past)], info)[0])

    def after_epoch(self, schedule: Schedule, epochs_done: int, epoch_seconds: list[float], max_epochs: int) -> str | None:
        """Refit the epochs (and a shorter last one) to the mean of the last epochs' times; the change's note, or None.

        An epoch costs its measured time plus its save (timed separately, the slowest seen); the end
        reserve is the measured one once a save was timed.
        """
        mean_epoch_s = float(np.mean(epoch_seconds[-REFIT_WINDOW:])) + (self.bookkeeping_s or 0.0)
        new_epochs, final = refit_to_budget_end(schedule, epochs_done, self.budget_s - self.elapsed(), mean_epoch_s,
                                                max_epochs,
                                                reserve_s=None if self.bookkeeping_s is None else self.end_reserve())
        if (new_epochs, final) == (schedule.epochs, schedule.final_epoch_iterations):
            return None
        note = f"epochs {schedule.epochs} -> {new_epochs} (refitted to measured epoch time)"
        if final:
            note += f", the last of {final} steps (the rest of the budget)"
        schedule.epochs, schedule.final_epoch_iterations = new_epochs, final
        return note

    def final_record(self, step_seconds: float) -> dict:
        """The measured share of the command's wall time inside optimiser steps (calibration steps included),
        and the end reserve the last epoch kept."""
        return {"step_share": round(step_seconds / max(self.elapsed(), 1e-9), 3),
                "end_reserve_s": round(self.end_reserve(), 2),
                "save_s": round(self.bookkeeping_s, 3) if self.bookkeeping_s is not None else None}


VALIDATION_MODES = ("full", "sampled", "end")
FRACTION_SCALE = 1_000_000            # validation_fraction travels as an integer in millionths


def agree(schedule: Schedule, info: dd.DistInfo) -> Schedule:
    """Rank 0's decision on every rank: epochs, iterations, validation mode, frequency and fraction.

    Each rank's clock and validation share differ, so each rank's fit may differ; every rank must
    validate after the same epochs (validation sums over ranks) and step the same number of times.
    """
    values = dd.broadcast_ints([schedule.epochs, schedule.iterations_per_epoch, schedule.validate_every,
                                VALIDATION_MODES.index(schedule.validation),
                                int(round(schedule.validation_fraction * FRACTION_SCALE))], info)
    schedule.epochs, schedule.iterations_per_epoch, schedule.validate_every = values[:3]
    schedule.validation = VALIDATION_MODES[values[3]]
    schedule.validation_fraction = values[4] / FRACTION_SCALE
    return schedule


def make_budget(time_budget_s: float | None, started_at: float | None) -> TimeBudget | NoBudget:
    """TimeBudget for a positive budget, else NoBudget; both clocked from started_at (now when None)."""
    start = time.monotonic() if started_at is None else started_at
    return TimeBudget(time_budget_s, start) if time_budget_s else NoBudget(start)
