"""Learning-rate schedule (poly decay) and fitting a training schedule to a wall-clock time budget.

Budget rule (docs/cli/train.md), `fit_to_budget`: the trainer measures the seconds per training
step after a few warm-up steps and estimates the cost of one whole validation pass; at least
MIN_STEP_SHARE of the *whole* budget (start-up included) must go to optimiser steps. What the
start-up, the final checkpoint (final_reserve_s), the per-epoch bookkeeping and the safety margin
leave of the other 20 % is the validation allowance, spent in this order of preference:
  1. "full" validation every --validate-every epochs;
  2. "full" validation every k epochs (k grown until it fits, at least MIN_VALIDATIONS of them);
  3. "sampled" validation: MIN_VALIDATIONS passes over a seeded share of each case (regions
     around the classes, segkit.training.validation.sampled_cases), the share >= MIN_SAMPLE_FRACTION;
  4. "end": one validation after the last epoch only (sampled, >= END_MIN_FRACTION, when a whole pass does not fit).
Then epochs x iterations per epoch use the remaining time so poly decay reaches zero at the
budget's end: the requested iterations per epoch (250) while at least MIN_EPOCHS epochs fit,
otherwise MIN_EPOCHS epochs of fewer iterations, but never fewer than MIN_ITERATIONS per epoch
(fewer epochs instead) and never more epochs than the per-epoch bookkeeping allows
(MAX_BOOKKEEPING_SHARE of the budget; longer epochs instead). Every concession is listed in
Schedule.given_up.

The end of the budget (#27): before anything is saved the run keeps the fixed final_reserve for
what follows its last step; once an end-of-epoch save has been timed it keeps end_reserve
instead -- two saves as slow as the slowest measured, the command's exit and a jitter margin --
and refit_to_budget_end turns the rest into steps (an 8-minute run kept 10 s, now ~4 s).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

MIN_EPOCHS = 10
FINAL_RESERVE_S = 10.0          # final checkpoint + log + picture (at most FINAL_RESERVE_SHARE of the budget)
FINAL_RESERVE_SHARE = 0.04
EXIT_RESERVE_S = 1.5            # after the final checkpoint: the command's last lines and interpreter exit
#                                 (idle 2-core machine, 8-minute run: 1.7 s from the final record to the exit)
END_JITTER_SHARE = 0.0025       # of the budget, kept after the last step for clock and load jitter
SAFETY = 0.97                   # share of the remaining budget planned for (the machine may slow down)
MIN_STEP_SHARE = 0.8            # share of the whole budget that must go to optimiser steps
SHARE_MARGIN = 0.02             # planned above MIN_STEP_SHARE: steps come in whole epochs, clocks jitter
MIN_ITERATIONS = 20             # steps per epoch below which an epoch is bookkeeping, not training
MIN_VALIDATIONS = 3             # validations worth having for choosing the best checkpoint
MIN_SAMPLE_FRACTION = 0.1       # smallest share of the validation data a sampled pass covers
END_MIN_FRACTION = 0.02         # the one end-of-run validation covers at least this (>= one region per case)
EPOCH_OVERHEAD_S = 0.5          # per-epoch log line + checkpoint_latest + progress.png (estimate)
MAX_BOOKKEEPING_SHARE = 0.04    # share of the budget the per-epoch bookkeeping may take


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
    validation_s: float | None = None    # one whole validation pass (estimated or measured)
    validation: str = "full"             # "full" | "sampled" | "end" (one validation after the last epoch)
    validation_fraction: float = 1.0     # share of the validation data each pass covers
    predicted_step_share: float | None = None   # predicted share of the budget in optimiser steps
    given_up: list[str] = field(default_factory=list)
    # the last epoch's steps when the budget's end leaves less than a whole epoch (None: a whole one)
    final_epoch_iterations: int | None = None

    @property
    def total_steps(self) -> int:
        """Number of optimiser steps in the whole run."""
        return sum(self.iterations_in(epoch) for epoch in range(self.epochs)) if self.final_epoch_iterations \
            else self.epochs * self.iterations_per_epoch

    def iterations_in(self, epoch: int) -> int:
        """Steps of epoch (0-based): iterations_per_epoch, or final_epoch_iterations for a shortened last one."""
        if self.final_epoch_iterations and epoch == self.epochs - 1:
            return self.final_epoch_iterations
        return self.iterations_per_epoch

    @property
    def validation_cost_s(self) -> float:
        """Expected seconds of one validation as scheduled."""
        return (self.validation_s or 0.0) * self.validation_fraction

    def validates_after(self, epoch: int) -> bool:
        """Whether the epoch (0-based) ends with a validation."""
        if epoch + 1 >= self.epochs:
            return True
        return self.validation != "end" and (epoch + 1) % self.validate_every == 0

    def to_dict(self) -> dict:
        """JSON-ready record of the decision."""
        return asdict(self) | {"total_steps": self.total_steps}


def final_reserve(budget_s: float) -> float:
    """Seconds kept for the final checkpoint and records: FINAL_RESERVE_S, at most FINAL_RESERVE_SHARE of the budget."""
    return min(FINAL_RESERVE_S, max(1.0, FINAL_RESERVE_SHARE * budget_s))


def end_reserve(budget_s: float, save_s: float | None) -> float:
    """Seconds kept after the last step (its validation apart): final_reserve until a save was timed, then
    the measured costs.

    save_s: the slowest end-of-epoch save measured (checkpoints, log, picture); after the last step
    come that epoch's save and the final one, then the exit, then a jitter margin.
    """
    if save_s is None:
        return final_reserve(budget_s)
    return 2 * save_s + EXIT_RESERVE_S + END_JITTER_SHARE * budget_s


def _epochs_and_iterations(steps: int, max_epochs: int, iterations_per_epoch: int, max_epochs_by_overhead: int,
                           given_up: list[str]) -> tuple[int, int]:
    """Split `steps` into epochs x iterations (see the module's rule), noting each concession."""
    if steps <= 0:
        return 1, 1
    cap = max(1, min(max_epochs, max_epochs_by_overhead))
    epochs = min(cap, steps // iterations_per_epoch)
    if epochs >= min(MIN_EPOCHS, cap) and epochs >= 1:
        if steps // iterations_per_epoch > max_epochs_by_overhead and epochs == max_epochs_by_overhead < max_epochs:
            # the bookkeeping cap, not the budget, limits the epochs: longer epochs fill the budget
            return epochs, steps // epochs
        return epochs, iterations_per_epoch
    epochs = max(1, min(MIN_EPOCHS, cap, steps // MIN_ITERATIONS))
    iterations = max(1, steps // epochs)
    given_up.append(f"epochs of {iterations} steps instead of {iterations_per_epoch} ({epochs} epochs: "
                    f"at least {MIN_ITERATIONS} steps each, bookkeeping <= {MAX_BOOKKEEPING_SHARE:.0%} of the budget)")
    return epochs, iterations


def _plan_validation(allowance_s: float, validation_s: float, epochs: int, validate_every: int,
                     given_up: list[str]) -> tuple[str, float, int, float]:
    """(mode, fraction, validate_every, seconds of all validations) within allowance_s."""
    wanted = max(1, math.ceil(epochs / max(1, validate_every)))
    if validation_s <= 0 or wanted * validation_s <= allowance_s:
        return "full", 1.0, validate_every, wanted * validation_s
    affordable = int(allowance_s // validation_s)
    if affordable >= MIN_VALIDATIONS:
        every = max(validate_every, math.ceil(epochs / affordable))
        count = math.ceil(epochs / every)
        given_up.append(f"validation every {every} epochs instead of every {validate_every} "
                        f"({count} whole passes of {validation_s:.1f} s fit the 20 % left after steps)")
        return "full", 1.0, every, count * validation_s
    fraction = allowance_s / (MIN_VALIDATIONS * validation_s)
    if fraction >= MIN_SAMPLE_FRACTION and epochs >= MIN_VALIDATIONS:
        every = max(validate_every, math.ceil(epochs / MIN_VALIDATIONS))
        given_up.append(f"sampled validation: {fraction:.0%} of each validation case, every {every} epochs "
                        f"(a whole pass takes {validation_s:.1f} s)")
        return "sampled", round(fraction, 3), every, MIN_VALIDATIONS * fraction * validation_s
    fraction = min(1.0, max(END_MIN_FRACTION, allowance_s / validation_s))
    given_up.append("per-epoch validation: one validation after the last epoch only"
                    + (f", on {fraction:.0%} of each case" if fraction < 1 else "")
                    + f" (a whole pass takes {validation_s:.1f} s of a {allowance_s:.1f} s allowance)")
    return "end", round(fraction, 3), max(1, epochs), fraction * validation_s


def fit_to_budget(remaining_s: float, seconds_per_step: float, validation_s: float, max_epochs: int,
                  iterations_per_epoch: int, steps_done: int = 0, budget_s: float | None = None,
                  overhead_s: float = 0.0, validate_every: int = 1, epoch_overhead_s: float = EPOCH_OVERHEAD_S,
                  min_step_share: float = MIN_STEP_SHARE) -> Schedule:
    """The schedule for the rest of a budgeted run (the module's rule); a pure function of the measurements.

    remaining_s: budget left now; budget_s: the whole budget (default remaining_s); overhead_s:
    seconds already spent outside optimiser steps (start-up, hardware fit, timing); steps_done:
    optimiser steps already taken that count towards poly decay.
    """
    budget_s = remaining_s if budget_s is None else budget_s
    reserve = final_reserve(budget_s)
    usable = max(0.0, remaining_s * SAFETY - reserve)
    allowance = (1 - min_step_share - SHARE_MARGIN) * budget_s - overhead_s - reserve - (1 - SAFETY) * remaining_s
    given_up: list[str] = []
    max_by_overhead = max(1, int(MAX_BOOKKEEPING_SHARE * budget_s // max(epoch_overhead_s, 1e-6)))
    # epochs without validation first, then the validation plan for that many epochs, then refit
    steps = int(usable // seconds_per_step) + steps_done
    epochs, _ = _epochs_and_iterations(steps, max_epochs, iterations_per_epoch, max_by_overhead, [])
    allowance -= epochs * epoch_overhead_s
    mode, fraction, every, validation_total = _plan_validation(allowance, validation_s, epochs, validate_every,
                                                               given_up)
    step_time = max(0.0, usable - validation_total - epochs * epoch_overhead_s)
    steps = int(step_time // seconds_per_step) + steps_done
    epochs, iterations = _epochs_and_iterations(steps, max_epochs, iterations_per_epoch, max_by_overhead, given_up)
    if mode == "end":
        every = epochs
    elif mode == "sampled":
        every = max(validate_every, math.ceil(epochs / MIN_VALIDATIONS))
    share = ((epochs * iterations - steps_done) * seconds_per_step) / budget_s if budget_s > 0 else 0.0
    if share < min_step_share:
        given_up.append(f"the {min_step_share:.0%} step share: start-up and the final checkpoint already take "
                        f"{overhead_s + reserve:.1f} s of {budget_s:.1f} s")
    return Schedule(max(epochs, 1), iterations, validate_every=every, source="time_budget", budget_s=budget_s,
                    seconds_per_step=seconds_per_step, validation_s=validation_s, validation=mode,
                    validation_fraction=fraction, predicted_step_share=round(share, 3), given_up=given_up)


def _refit_reserve(schedule: Schedule, remaining_s: float, reserve_s: float | None = None) -> float:
    """Seconds a refit keeps free: the end reserve (reserve_s; default final_reserve), and the part of
    the last epoch's validation that the mean epoch time does not hold already (all of it in an
    end-only run, 1 - 1/k of it when every k-th epoch validates)."""
    share = 1.0 if schedule.validation == "end" else 1.0 - 1.0 / max(1, schedule.validate_every)
    reserve = final_reserve(schedule.budget_s or remaining_s) if reserve_s is None else reserve_s
    return reserve + share * schedule.validation_cost_s


def refit_epochs(schedule: Schedule, epochs_done: int, remaining_s: float, mean_epoch_s: float, max_epochs: int,
                 reserve_s: float | None = None) -> int:
    """Epoch count that ends at the budget given the measured epoch time (grows or shrinks, <= max_epochs).

    Returns epochs_done (stop now) when not even one more epoch fits. reserve_s: seconds kept after
    the last step (end_reserve; default final_reserve).
    """
    if mean_epoch_s <= 0:
        return schedule.epochs
    affordable = int(max(0.0, remaining_s - _refit_reserve(schedule, remaining_s, reserve_s)) // mean_epoch_s)
    return max(1, epochs_done, min(max_epochs, epochs_done + affordable))


def _measured_step_seconds(schedule: Schedule, mean_epoch_s: float) -> float:
    """Seconds per step inside the measured epochs: their mean time less bookkeeping and their share of validation.

    Never below half the epoch's plain average, so a validation estimate that is too high cannot
    make steps look free.
    """
    validation_share = 0.0 if schedule.validation == "end" else 1.0 / max(1, schedule.validate_every)
    stepping_s = mean_epoch_s - EPOCH_OVERHEAD_S - validation_share * schedule.validation_cost_s
    plain = mean_epoch_s / max(1, schedule.iterations_per_epoch)
    return max(0.5 * plain, stepping_s / max(1, schedule.iterations_per_epoch))


def refit_to_budget_end(schedule: Schedule, epochs_done: int, remaining_s: float, mean_epoch_s: float,
                        max_epochs: int, reserve_s: float | None = None) -> tuple[int, int | None]:
    """(epochs, final_epoch_iterations): whole epochs as refit_epochs, then the rest of the budget in steps.

    Without it a run stops when the next whole epoch no longer fits, leaving up to one epoch of the
    budget unused (an 8-minute CPU run stopped at ~7.3 minutes). The rest, after the reserve, is
    priced at the measured seconds per step: at least MIN_ITERATIONS steps become one more, shorter
    epoch; fewer lengthen the last whole epoch still to run. The trainer's deadline still cuts a
    step count that turns out too long.
    """
    epochs = refit_epochs(schedule, epochs_done, remaining_s, mean_epoch_s, max_epochs, reserve_s)
    if mean_epoch_s <= 0:
        return epochs, None
    whole = epochs - epochs_done
    # a measured reserve already holds the last epoch's save (and mean_epoch_s each whole epoch's);
    # the fixed one does not, so the extra epoch's bookkeeping is priced at its estimate there
    bookkeeping = EPOCH_OVERHEAD_S if reserve_s is None else 0.0
    left_s = remaining_s - _refit_reserve(schedule, remaining_s, reserve_s) - whole * mean_epoch_s - bookkeeping
    steps = int(SAFETY * max(0.0, left_s) // _measured_step_seconds(schedule, mean_epoch_s))
    if steps >= MIN_ITERATIONS and epochs < max_epochs:
        return epochs + 1, min(steps, schedule.iterations_per_epoch)
    if steps > 0 and whole >= 1:
        return epochs, schedule.iterations_per_epoch + steps
    # nothing more to add: a last epoch already shortened or lengthened stays on record
    return epochs, schedule.final_epoch_iterations if epochs == schedule.epochs and whole == 0 else None
