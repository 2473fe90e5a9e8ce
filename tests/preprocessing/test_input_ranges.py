"""Training ranges in the plans and the spacing / intensity warnings for inputs outside them."""

from __future__ import annotations

import numpy as np
from plans_helpers import view

from segkit.plans import Plans
from segkit.preprocessing.input_ranges import range_warnings, training_ranges

FINGERPRINT = {
    "cases": [{"spacing": [3.0, 0.8, 0.8]}, {"spacing": [5.0, 1.0, 1.0]}],
    "foreground_intensity_statistics": {
        "0": {"name": "CT", "percentile_0.5": -100.0, "percentile_99.5": 300.0},
        "1": {"name": "T1", "percentile_0.5": 10.0, "percentile_99.5": 900.0}},
}
NORMALIZATION = [{"scheme": "ct"}, {"scheme": "zscore"}]
LPS = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
SAGITTAL = (0.0, 0.0, -1.0, 1.0, 0.0, 0.0, 0.0, -1.0, 0.0)   # stored axes i, j, k towards P, I, L


def plans() -> Plans:
    """Plans with the ranges of FINGERPRINT, reoriented to the canonical frame."""
    return view({"canonical_orientation": "LPS", "training_ranges": training_ranges(FINGERPRINT, NORMALIZATION)})


def ct_like(offset: float = 0.0) -> np.ndarray:
    """(2, z, y, x): channel 0 a CT-like body (air -1000, tissue 40 HU) + offset, channel 1 anything."""
    rng = np.random.default_rng(0)
    volume = np.full((20, 32, 32), -1000.0, dtype=np.float32)
    volume[4:16, 6:26, 6:26] = 40 + rng.normal(0, 20, (12, 20, 20))
    return np.stack([volume + offset, rng.uniform(0, 5000, volume.shape).astype(np.float32)])


def test_training_ranges_hold_spacing_extremes_and_the_foreground_percentiles():
    ranges = training_ranges(FINGERPRINT, NORMALIZATION)
    assert ranges["spacing"] == {"min": [3.0, 0.8, 0.8], "max": [5.0, 1.0, 1.0]}
    assert ranges["intensity"][0] == {"channel": "CT", "scheme": "ct", "percentile_0.5": -100.0,
                                      "percentile_99.5": 300.0}
    assert ranges["intensity"][1]["scheme"] == "zscore"


def test_inside_the_ranges_no_warning_and_legacy_plans_none():
    assert range_warnings(plans(), ct_like(), (4.0, 0.9, 0.9), LPS) == []
    assert range_warnings(plans(), ct_like(), (5.4, 1.05, 0.75), LPS) == []     # within the 10 % tolerance
    assert range_warnings(view({}), ct_like(1024.0), (10.0, 3.0, 3.0), LPS) == []


def test_spacing_outside_training_is_named_axis_by_axis_in_the_canonical_frame():
    warnings = range_warnings(plans(), ct_like(), (1.0, 0.9, 0.9), LPS)
    assert len(warnings) == 1 and "z 1 mm" in warnings[0] and "training z, y, x: 3-5, 0.8-1, 0.8-1 mm" in warnings[0]
    # a sagittal image stored (z, y, x) = (L, I, P) axes with 4 mm along L: canonical x is 4 mm -> warned
    sagittal = range_warnings(plans(), ct_like(), (4.0, 0.9, 0.9), SAGITTAL)
    assert len(sagittal) == 1 and "x 4 mm" in sagittal[0]


def test_ct_not_in_hounsfield_units_is_warned_and_zscore_channels_are_not_compared():
    shifted = range_warnings(plans(), ct_like(1024.0), (4.0, 0.9, 0.9), LPS)   # raw stored values, no rescale
    assert len(shifted) == 1 and "channel CT" in shifted[0] and "Hounsfield" in shifted[0]
    assert "T1" not in " ".join(shifted)            # channel 1 (uniform 0-5000) is z-scored: not compared
    mr = ct_like()
    mr[0] = np.random.default_rng(1).uniform(1000, 5000, mr[0].shape)   # an MR-like channel: nothing in range
    warnings = range_warnings(plans(), mr, (4.0, 0.9, 0.9), LPS)
    assert len(warnings) == 1 and "wrong modality or units" in warnings[0]
    lung = view({"canonical_orientation": "LPS", "training_ranges": training_ranges(
        {"cases": [], "foreground_intensity_statistics": {"0": {"name": "CT", "percentile_0.5": -995.0,
                                                                "percentile_99.5": 100.0}}}, [{"scheme": "ct"}])})
    assert range_warnings(lung, ct_like(), (4.0, 0.9, 0.9), LPS) == []   # foreground as dark as the air: fine
