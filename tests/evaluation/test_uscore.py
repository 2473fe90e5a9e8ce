"""U-Score (segkit's approximation of U-Bench's): normalisation, harmonic mean, reference bounds."""

from __future__ import annotations

import pytest

from segkit.evaluation.uscore import reference_bounds, u_score, u_score_terms

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
