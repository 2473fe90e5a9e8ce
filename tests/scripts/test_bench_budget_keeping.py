"""scripts/bench_budget_keeping.py: where a budgeted run's seconds went, added up from its own records (#27)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
import bench_budget_keeping  # noqa: E402


def test_training_share_counts_calibration_epochs_and_a_late_validation_only():
    schedule = {"calibration_from_s": 6.8, "calibration_step_s": 1.5, "decided_at_s": 8.3,
                "final": {"elapsed_s": 476.0, "finished_at_s": 476.4, "end_reserve_s": 4.0, "save_s": 0.3,
                          "final_save_s": 0.1}}
    log = [{"epoch": 0, "epoch_time_s": 230.0, "val_time_s": 1.0},
           {"epoch": 1, "epoch_time_s": 235.0},
           {"epoch": 2, "epoch_time_s": 0.5, "val_time_s": 1.2, "val_after_epoch_time": True}]
    spent = bench_budget_keeping.budget_spending(480.0, 478.0, schedule, log)
    # the first validation is inside its epoch's time; the last ran after the epoch was timed
    assert spent["training_s"] == pytest.approx(1.5 + 230.0 + 235.0 + 0.5 + 1.2)
    assert spent["training_share"] == pytest.approx(468.2 / 480.0, abs=1e-4)
    assert spent["startup_s"] == 6.8 and spent["exit_s"] == pytest.approx(1.6)
    assert spent["unused_s"] == pytest.approx(2.0)
    assert spent["bookkeeping_s"] == pytest.approx(476.4 - 6.8 - 468.2, abs=0.1)
    line = bench_budget_keeping.summary_line({"minutes": 8.0, "budget_s": 480.0, "wall_s": 478.0,
                                              "over_budget_pct": -0.4, "load_average_before": 1.2, **spent})
    assert "97.5 % of the budget (#27: >= 97 %)" in line and "unused 2.0 s" in line


def test_a_run_recorded_before_the_new_fields_counts_its_start_up_until_the_decision():
    schedule = {"decided_at_s": 8.32, "final": {"elapsed_s": 470.2}}
    log = [{"epoch": 0, "epoch_time_s": 457.8}]
    spent = bench_budget_keeping.budget_spending(480.0, 471.9, schedule, log)
    assert spent["training_share"] == pytest.approx(0.9538, abs=1e-4) and spent["startup_s"] == 8.32
