"""Intensity normalisation schemes per channel."""

from __future__ import annotations

import numpy as np

from segkit.preprocessing.normalize import normalize_channels


def test_normalisation_schemes():
    rng = np.random.default_rng(0)
    images = rng.normal(100, 20, (4, 6, 8, 8)).astype(np.float32)
    seg = np.zeros((6, 8, 8), dtype=np.int16)
    seg[:, :2] = -1
    images[:, seg < 0] = 0
    entries = [{"scheme": "zscore", "use_nonzero_mask": True}, {"scheme": "zscore", "use_nonzero_mask": False},
               {"scheme": "ct", "clip": [90.0, 110.0], "mean": 100.0, "std": 5.0}, {"scheme": "rescale_0_1"}]
    out = normalize_channels(images, seg, entries)
    inside = seg >= 0
    assert abs(out[0][inside].mean()) < 1e-4 and abs(out[0][inside].std() - 1) < 1e-3
    assert np.all(out[0][~inside] == 0)
    assert abs(out[1].mean()) < 1e-4 and abs(out[1].std() - 1) < 1e-3
    np.testing.assert_allclose(out[2], (np.clip(images[2], 90, 110) - 100) / 5, atol=1e-5)
    assert out[3].min() == 0 and abs(out[3].max() - 1) < 1e-6
    np.testing.assert_array_equal(normalize_channels(images, seg, [{"scheme": "none"}] * 4), images)
