"""U-Score: one number for accuracy against cost, in the spirit of U-Bench (Tang et al., 2025).

U-Bench ("U-Bench: A Comprehensive Understanding of U-Net through 100-Variant Benchmarking",
arXiv:2510.07041) introduces the U-Score for the performance-efficiency trade-off, from a model's
accuracy (IoU), parameters, FLOPs and inference speed (FPS), normalised per dataset between
reference values taken over the benchmarked models. Its exact formula could not be found in the
sources available to segkit (docs/benchmarks.md, "U-Score"), so this module implements the closest
documented form and names it so (`FORMULA`):

- each metric is normalised between a low and a high reference value (by default the 10th and
  90th percentiles over a reference set of models, the reading of U-Bench's per-dataset anchors),
  clipped to [0, 1]: accuracy linearly, parameters and FLOPs (lower is better) and throughput
  (higher is better) on a log10 scale, since they span orders of magnitude;
- efficiency = the mean of the three cost terms;
- U-Score = the harmonic mean of the accuracy term and efficiency (0 when either is 0), so a model
  must be both accurate and cheap to score high.

A term whose reference range is empty (every reference model has the same value, e.g. the same Dice)
says nothing about where a model stands, so it is undefined (None), never a perfect 1: efficiency is
the mean of the defined cost terms (undefined when none is), and the U-Score is undefined when the
accuracy term or efficiency is. A single reference model spreads nothing, so at least two are needed
(MIN_REFERENCES).

segkit uses Dice where U-Bench uses IoU (they rank the same for one structure) and voxels per
second where it uses frames per second.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

FORMULA = ("segkit approximation of U-Bench's U-Score: harmonic mean of the normalised Dice and the mean of the "
           "log-normalised parameter, FLOP and throughput terms (reference bounds: 10th/90th percentile)")
METRICS = ("dice", "parameters", "flops", "throughput")
LOWER_IS_BETTER = ("parameters", "flops")
LOW_PERCENTILE, HIGH_PERCENTILE = 10.0, 90.0
MIN_REFERENCES = 2


def reference_bounds(rows: Sequence[Mapping[str, float]], low: float = LOW_PERCENTILE,
                     high: float = HIGH_PERCENTILE) -> dict[str, tuple[float, float]]:
    """Per metric, the (low, high) percentiles over the reference rows (each row holds every metric)."""
    if len(rows) < MIN_REFERENCES:
        raise ValueError(f"the U-Score needs at least {MIN_REFERENCES} reference models to normalise between, "
                         f"got {len(rows)} (one model spreads no range: every term would be undefined)")
    bounds = {}
    for metric in METRICS:
        values = np.array([float(row[metric]) for row in rows])
        bounds[metric] = (float(np.percentile(values, low)), float(np.percentile(values, high)))
    return bounds


def _term(metric: str, value: float, bounds: tuple[float, float]) -> float | None:
    """One metric normalised to [0, 1] between its bounds (1 = best); None (undefined) when they do not spread."""
    low, high = bounds
    if high <= low:
        return None
    if metric == "dice":
        share = (value - low) / (high - low)
    else:
        if min(value, low) <= 0:
            raise ValueError(f"{metric} must be positive for the U-Score, got {value}")
        share = (math.log10(value) - math.log10(low)) / (math.log10(high) - math.log10(low))
        if metric in LOWER_IS_BETTER:
            share = 1.0 - share
    return min(1.0, max(0.0, share))


def u_score_terms(dice: float, parameters: float, flops: float, throughput: float,
                  bounds: Mapping[str, tuple[float, float]]) -> dict[str, float | None]:
    """The normalised accuracy and cost terms, efficiency and the U-Score of one model (None = undefined)."""
    values = {"dice": dice, "parameters": parameters, "flops": flops, "throughput": throughput}
    terms = {metric: _term(metric, float(values[metric]), bounds[metric]) for metric in METRICS}
    costs = [t for t in (terms["parameters"], terms["flops"], terms["throughput"]) if t is not None]
    efficiency = sum(costs) / len(costs) if costs else None
    accuracy = terms["dice"]
    score: float | None
    if accuracy is None or efficiency is None:
        score = None
    else:
        score = 0.0 if accuracy + efficiency == 0 else 2 * accuracy * efficiency / (accuracy + efficiency)
    return {**{f"{m}_term": t for m, t in terms.items()}, "efficiency": efficiency, "u_score": score}


def undefined_terms(terms: Mapping[str, float | None]) -> list[str]:
    """The metrics whose term is undefined (their reference range is empty)."""
    return [metric for metric in METRICS if terms.get(f"{metric}_term") is None]


def u_score(dice: float, parameters: float, flops: float, throughput: float,
            bounds: Mapping[str, tuple[float, float]]) -> float | None:
    """The U-Score (segkit's approximation, see FORMULA) of one model against reference bounds; None if undefined."""
    return u_score_terms(dice, parameters, flops, throughput, bounds)["u_score"]
