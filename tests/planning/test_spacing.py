"""Target spacing (nnU-Net's median / tenth-percentile rule) and the per-channel normalisation choice."""

from __future__ import annotations

import numpy as np
import pytest

from segkit.planning.spacing import fullres_target_spacing, normalization_for_channel


def test_target_spacing_is_median_when_not_anisotropic() -> None:
    spacings = np.array([[1.0, 0.8, 0.8], [1.2, 0.7, 0.7], [1.1, 0.9, 0.9]])
    shapes = np.array([[100, 120, 120]] * 3)
    assert fullres_target_spacing(spacings, shapes) == pytest.approx([1.1, 0.8, 0.8])


def test_target_spacing_uses_tenth_percentile_of_clearly_anisotropic_axis() -> None:
    spacings = np.array([[5.0, 0.7, 0.7], [6.0, 0.7, 0.7], [4.0, 0.7, 0.7], [5.0, 0.7, 0.7], [3.0, 0.7, 0.7]])
    shapes = np.array([[20, 400, 400]] * 5)
    target = fullres_target_spacing(spacings, shapes)
    assert target[0] == pytest.approx(np.percentile(spacings[:, 0], 10))
    assert target[1:] == pytest.approx([0.7, 0.7])
    # many slices: anisotropic spacing alone does not trigger the rule
    assert fullres_target_spacing(spacings, np.array([[300, 400, 400]] * 5))[0] == pytest.approx(5.0)


def test_normalisation_schemes() -> None:
    stats = {"mean": 40.0, "std": 300.0, "percentile_0.5": -1000.0, "percentile_99.5": 1500.0}
    assert normalization_for_channel("CT", stats, 0.5) == {"scheme": "ct", "clip": [-1000.0, 1500.0], "mean": 40.0, "std": 300.0}
    assert normalization_for_channel("T2", stats, 0.5) == {"scheme": "zscore", "use_nonzero_mask": True}
    assert normalization_for_channel("T2", stats, 0.9) == {"scheme": "zscore", "use_nonzero_mask": False}
    assert normalization_for_channel("noNorm", stats, 0.5) == {"scheme": "none"}
