"""U-Score (segkit's approximation of U-Bench's): normalisation, harmonic mean, reference bounds."""

from __future__ import annotations

import pytest

from segkit.evaluation.uscore import reference_bounds, u_score, u_score_terms, undefined_terms

BOUNDS = {"dice": (0.5, 0.9), "parameters": (1e6, 1e8), "flops": (1e9, 1e11), "throughput": (1e4, 1e6)}


def test_midpoints_score_one_half() -> None:
    """Dice halfway and every cost at the log-midpoint: each term 0.5, efficiency 0.5, U-Score 0.5."""
    terms = u_score_terms(0.7, 1e7, 1e10, 1e5, BOUNDS)
    assert terms["dice_term"] == pytest.approx(0.5)
    assert terms["parameters_term"] == pytest.approx(0.5)
    assert terms["flops_term"] == pytest.approx(0.5)
    assert terms["throughput_term"] == pytest.approx(0.5)
    assert terms["u_score"] == pytest.approx(0.5)


def test_best_and_clipped_values() -> None:
    """The best model on every axis scores 1; values beyond the bounds are clipped, not extrapolated."""
    assert u_score(0.9, 1e6, 1e9, 1e6, BOUNDS) == pytest.approx(1.0)
    assert u_score(0.99, 1e5, 1e8, 1e7, BOUNDS) == pytest.approx(1.0)
    assert u_score(0.3, 1e6, 1e9, 1e6, BOUNDS) == 0.0   # accuracy term 0 -> harmonic mean 0


def test_harmonic_mean_of_accuracy_and_efficiency() -> None:
    """Accuracy 1, efficiency 1/4 (params at best, FLOPs and throughput worst... mean of 1, 0, 0 = 1/3)."""
    terms = u_score_terms(0.9, 1e6, 1e11, 1e4, BOUNDS)
    assert terms["efficiency"] == pytest.approx(1 / 3)
    assert terms["u_score"] == pytest.approx(2 * 1 * (1 / 3) / (1 + 1 / 3))
    # a cheaper model with the same Dice scores higher, a more accurate one with the same cost too
    assert u_score(0.8, 1e7, 1e10, 1e5, BOUNDS) > u_score(0.8, 1e7, 1e10, 1e4, BOUNDS)
    assert u_score(0.85, 1e7, 1e10, 1e5, BOUNDS) > u_score(0.8, 1e7, 1e10, 1e5, BOUNDS)


def test_reference_bounds_are_percentiles() -> None:
    """Bounds are the 10th and 90th percentiles of each metric over the reference rows."""
    rows = [{"dice": d / 10, "parameters": 10.0 ** d, "flops": 1e9 * d, "throughput": 1e3 * d} for d in range(1, 11)]
    bounds = reference_bounds(rows)
    assert bounds["dice"] == pytest.approx((0.19, 0.91))
    assert bounds["flops"] == pytest.approx((1.9e9, 9.1e9))
    with pytest.raises(ValueError):
        reference_bounds([])


def test_one_reference_row_is_refused_with_the_reason() -> None:
    """A single reference model spreads no range: the bounds refuse it and say so (not every term = 1)."""
    row = {"dice": 0.8, "parameters": 1e6, "flops": 1e9, "throughput": 1e5}
    with pytest.raises(ValueError, match="at least 2 reference models.*got 1"):
        reference_bounds([row])


def test_equal_dice_values_leave_the_accuracy_term_undefined() -> None:
    """References with one Dice value: the Dice term is undefined for a Dice-0 model, not a perfect 1."""
    rows = [{"dice": 0.6, "parameters": 10.0 ** p, "flops": 1e9 * p, "throughput": 1e4 * p} for p in range(1, 6)]
    bounds = reference_bounds(rows)
    terms = u_score_terms(0.0, 1e3, 3e9, 3e4, bounds)
    assert terms["dice_term"] is None
    assert terms["u_score"] is None
    assert undefined_terms(terms) == ["dice"]
    assert terms["efficiency"] is not None and 0 < terms["efficiency"] < 1   # the cost terms still spread
    assert u_score(0.0, 1e3, 3e9, 3e4, bounds) is None


def test_efficiency_averages_only_the_defined_cost_terms() -> None:
    """Equal FLOPs across the references: efficiency is the mean of the parameter and throughput terms."""
    bounds = dict(BOUNDS, flops=(1e10, 1e10))
    terms = u_score_terms(0.9, 1e6, 1e10, 1e4, bounds)
    assert terms["flops_term"] is None
    assert terms["efficiency"] == pytest.approx((1.0 + 0.0) / 2)
    assert terms["u_score"] == pytest.approx(2 * 1 * 0.5 / 1.5)
    all_equal = {m: (1.0, 1.0) for m in BOUNDS}
    assert u_score_terms(0.9, 1e6, 1e10, 1e4, all_equal)["efficiency"] is None
