"""Fitting the schedule to a time budget and the hardware fit of patch and batch (fitting candidates)."""

import math

import numpy as np
import pytest
from training_data import TINY_ARCH, configuration

from segkit.training import fitting
from segkit.training.fitting import candidates, cost_proxy, fit_to_cpu_budget
from segkit.training.schedule import MIN_EPOCHS, fit_to_budget, poly_lr, refit_epochs


def test_poly_lr_decays_to_zero():
    assert poly_lr(0.01, 0, 100) == pytest.approx(0.01)
    assert poly_lr(0.01, 50, 100) == pytest.approx(0.01 * 0.5 ** 0.9)
    assert poly_lr(0.01, 100, 100) == 0.0


def test_budget_fit_fills_the_budget_and_refits_epochs():
    roomy = fit_to_budget(3600, seconds_per_step=0.1, validation_s=5, max_epochs=1000, iterations_per_epoch=250)
    assert roomy.iterations_per_epoch == 250 and roomy.validation == "full"
    spent = roomy.total_steps * 0.1 + roomy.epochs // roomy.validate_every * 5
    assert spent <= 3600 and spent + 250 * 0.1 > 3600 * 0.8   # no room left for another epoch's steps
    tight = fit_to_budget(480, seconds_per_step=1.0, validation_s=6, max_epochs=1000, iterations_per_epoch=250)
    assert tight.epochs == MIN_EPOCHS and tight.iterations_per_epoch < 250
    assert tight.total_steps * 1.0 + math.ceil(tight.epochs / tight.validate_every) * 6 <= 480
    assert refit_epochs(tight, epochs_done=2, remaining_s=100, mean_epoch_s=40, max_epochs=1000) == 4
    assert refit_epochs(tight, epochs_done=5, remaining_s=30, mean_epoch_s=40, max_epochs=1000) == 5   # stop now
    assert refit_epochs(tight, epochs_done=2, remaining_s=1e6, mean_epoch_s=40, max_epochs=1000) == 1000
    assert refit_epochs(tight, epochs_done=2, remaining_s=1e6, mean_epoch_s=40, max_epochs=12) == 12


def test_fitting_candidates_get_cheaper_and_keep_patches_divisible():
    entry = configuration(patch_size=[80, 96, 80], batch_size=4,
                          architecture=dict(TINY_ARCH, features_per_stage=[32, 64, 128]))
    steps = list(candidates(entry))
    assert steps[0][0] == "as planned" and steps[1][1].batch_size == 2
    strides = entry.architecture.total_strides
    for _, c in steps:
        assert all(p % s == 0 for p, s in zip(c.patch_size, strides))
        assert c.as_dict()["patch_size"] == list(c.patch_size)   # the entry a model dir's plans.json gets
    assert steps[-1][1].architecture.features_per_stage[0] == 8
    assert np.prod(steps[-1][1].patch_size) < np.prod(entry.patch_size)
    assert entry.as_dict()["patch_size"] == [80, 96, 80]          # the original entry is untouched
    wide = list(candidates(entry, min_width=16))                  # the short CPU budget recipe's floor
    assert min(c.architecture.features_per_stage[0] for _, c in wide) == 16


def test_fit_takes_the_first_candidate_reaching_the_step_target(monkeypatch):
    entry = configuration(patch_size=[80, 96, 80], batch_size=4,
                          architecture=dict(TINY_ARCH, features_per_stage=[32, 64, 128]))
    ordered = list(candidates(entry, min_width=16))
    budget_s = 480.0
    chosen_cost = {}
    for proxy_per_s in (4e9, 4e8):     # a fast and a 10x slower machine
        # step time exactly proportional to the cost proxy
        monkeypatch.setattr(fitting, "time_step", lambda e, *a, speed=proxy_per_s, **k: cost_proxy(e) / speed)
        steps = [budget_s * fitting.FIT_SHARE * proxy_per_s / cost_proxy(c) for _, c in ordered]
        chosen, record = fit_to_cpu_budget(entry, 1, 3, budget_s, build=None, log=lambda m: None, min_width=16)
        expected = next(i for i, s in enumerate(steps) if s >= fitting.TARGET_STEPS)
        assert record["chosen"] == ordered[expected][0]
        assert expected == 0 or steps[expected - 1] < fitting.TARGET_STEPS   # nothing bigger reaches the target
        chosen_cost[proxy_per_s] = cost_proxy(chosen)
    assert chosen_cost[4e8] < chosen_cost[4e9]     # the slower machine trains a cheaper configuration
