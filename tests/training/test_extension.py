"""Extending a finished run: the schedule grows by the epochs that fit the new budget."""

from __future__ import annotations

import pytest

from segkit.errors import UserError
from segkit.training.extension import extend_schedule
from segkit.training.schedule import FINAL_RESERVE_S, Schedule


def test_time_budget_extends_a_finished_run_by_the_epochs_that_fit():
    sched = Schedule(10, 50, validation_s=4.0)
    change = extend_schedule(sched, 10, None, 120.0, [30.0, 9.0, 10.0, 11.0])
    assert sched.epochs == 10 + int((120 - FINAL_RESERVE_S - 4.0) // 10.0) and "more epochs" in change
    unfinished = Schedule(10, 50)
    assert extend_schedule(unfinished, 6, None, 120.0, [10.0]) is None and unfinished.epochs == 10
    with pytest.raises(UserError, match="not even one more epoch"):
        extend_schedule(Schedule(10, 50), 10, None, 15.0, [10.0])
    shorter = Schedule(10, 50)
    assert extend_schedule(shorter, 4, 6, None, []) == "epochs 10 -> 6 (--resume --epochs)" and shorter.epochs == 6
