"""Learning-rate schedule (poly decay) and fitting a training schedule to a wall-clock time budget.

Budget rule (docs/cli/train.md): the trainer measures the seconds per training step after a few
warm-up steps and the cost of one validation pass, reserves time for the final checkpoint, and
sets epochs x iterations-per-epoch so that poly decay reaches zero when the budget is spent.
If fewer than MIN_EPOCHS epochs of the requested length fit, epochs are kept at MIN_EPOCHS
(when at least MIN_EPOCHS steps fit) and iterations per epoch shrink instead.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

MIN_EPOCHS = 10
FINAL_RESERVE_S = 10.0          # final checkpoint + log + picture
SAFETY = 0.92                   # share of the remaining budget planned for (the machine may slow down)


def poly_lr(base_lr: float, step: int, total_steps: int, exponent: float = 0.9) -> float:
    """Polynomial decay from base_lr at step 0 to 0 at total_steps."""
    return base_lr * max(0.0, 1.0 - step / max(total_steps, 1)) ** exponent


@dataclass
class Schedule:
    """How long training runs: epochs x iterations per epoch, and why."""

    epochs: int
    iterations_per_epoch: int
    validate_every: int = 1
    source: str = "fixed"                 # "fixed" | "time_budget"
    budget_s: float | None = None
    seconds_per_step: float | None = None
    validation_s: float | None = None

    @property
    def total_steps(self) -> int:
        """Number of optimiser steps in the whole run."""
        return self.epochs * self.iterations_per_epoch

    def to_dict(self) -> dict:
        """JSON-ready record of the decision."""
        return asdict(self) | {"total_steps": self.total_steps}


def fit_to_budget(remaining_s: float, seconds_per_step: float, validation_s: float, max_epochs: int,
                  iterations_per_epoch: int, steps_done: int = 0) -> Schedule:
    """Largest schedule whose training + validation + final checkpoint fit in remaining_s (counting steps_done)."""
    usable = max(0.0, remaining_s * SAFETY - FINAL_RESERVE_S)
    epochs = min(max_epochs, int((usable + steps_done * seconds_per_step)
                                 // (iterations_per_epoch * seconds_per_step + validation_s)))
    if epochs < MIN_EPOCHS:
        epochs = min(MIN_EPOCHS, max_epochs)
        per_epoch = (usable + steps_done * seconds_per_step) / epochs - validation_s
        iterations_per_epoch = max(1, math.floor(per_epoch / seconds_per_step))
    return Schedule(max(epochs, 1), iterations_per_epoch, source="time_budget", budget_s=None,
                    seconds_per_step=seconds_per_step, validation_s=validation_s)


def refit_epochs(schedule: Schedule, epochs_done: int, remaining_s: float, mean_epoch_s: float, max_epochs: int) -> int:
    """Epoch count that ends at the budget given the measured epoch time (grows or shrinks, <= max_epochs).

    Returns epochs_done (stop now) when not even one more epoch fits.
    """
    if mean_epoch_s <= 0:
        return schedule.epochs
    affordable = int(max(0.0, remaining_s - FINAL_RESERVE_S) // mean_epoch_s)
    return max(1, epochs_done, min(max_epochs, epochs_done + affordable))
