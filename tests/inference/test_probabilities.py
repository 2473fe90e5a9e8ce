"""The probabilities file's owner: its own .npz with metadata, and other tools' cross-validation files."""

from __future__ import annotations

import numpy as np
import pytest
from plans_helpers import view

from segkit.errors import UserError
from segkit.inference.probabilities import (
    load_cv_probabilities,
    load_probabilities,
    probability_metadata,
    save_probabilities,
)
from segkit.io.image import Geometry
from segkit.plans import (
    DEFAULT_LABEL_MODE,
)


def test_probabilities_owner_reads_its_own_and_foreign_cv_files(tmp_path):
    geometry = Geometry((1.0, 1.0, 2.0), (0.0, 0.0, 0.0), tuple(np.eye(3).ravel()), (4, 5, 6))
    probs = np.random.default_rng(0).random((2, *geometry.array_shape)).astype(np.float32)
    metadata = probability_metadata("c1", geometry, view({"outputs": {"a": [1]}}), ".nii.gz")
    save_probabilities(tmp_path / "c1.npz", probs, metadata)
    loaded, meta = load_probabilities(tmp_path / "c1.npz")
    assert np.allclose(loaded, probs, atol=1e-3) and meta["label_mode"] == DEFAULT_LABEL_MODE
    cv = load_cv_probabilities(tmp_path / "c1.npz", 2, geometry.array_shape, geometry)
    assert np.allclose(cv, loaded)
    np.savez(tmp_path / "other.npz", probs)          # another tool's file: one array, no metadata
    assert load_cv_probabilities(tmp_path / "other.npz", 2, geometry.array_shape).shape == probs.shape
    with pytest.raises(UserError, match="metadata lacks"):
        load_probabilities(tmp_path / "other.npz")
    with pytest.raises(UserError, match="expected"):
        load_cv_probabilities(tmp_path / "c1.npz", 3, geometry.array_shape)
