"""A model's post-processing decision: its validation, its reader and its application (segkit.models.postprocessing)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from segkit.errors import UserError
from segkit.models.postprocessing import NO_POSTPROCESSING, apply_postprocessing, check_decision, load_decision


def _labels() -> np.ndarray:
    """Class 1: a 2x2x2 block and one stray voxel; class 2: two single voxels far apart."""
    labels = np.zeros((6, 6, 6), dtype=np.uint8)
    labels[0:2, 0:2, 0:2] = 1
    labels[5, 5, 5] = 1
    labels[3, 0, 5] = 2
    labels[0, 5, 0] = 2
    return labels


def test_foreground_then_per_class_largest_component():
    labels = _labels()
    assert np.array_equal(apply_postprocessing(labels, NO_POSTPROCESSING), labels)
    per_class = apply_postprocessing(labels, {"foreground_lcc": False, "lcc_classes": {"one": [1]}})
    assert per_class[5, 5, 5] == 0 and per_class[0, 0, 0] == 1 and (per_class == 2).sum() == 2
    whole = apply_postprocessing(labels, {"foreground_lcc": True, "lcc_classes": {}})
    assert (whole != 0).sum() == 8 and set(np.unique(whole)) == {0, 1}
    assert labels[5, 5, 5] == 1   # the input is not modified


def test_decision_is_checked_and_normalised(tmp_path):
    decision = check_decision({"postprocessing": {"foreground_lcc": True, "lcc_classes": {"tumour": [1, 2]}}})
    assert decision == {"foreground_lcc": True, "lcc_classes": {"tumour": [1, 2]}}
    for bad in ({"foreground_lcc": "yes"}, {"lcc_classes": {"a": []}}, {"lcc_classes": {"a": [0]}},
                {"lcc_classes": {"a": [True]}}, [1, 2]):
        with pytest.raises(UserError):
            check_decision(bad, tmp_path / "decision.json")
    path = tmp_path / "find_best.json"
    path.write_text(json.dumps({"best": {"members": ["3d_fullres"]}, "postprocessing": {"foreground_lcc": False}}))
    assert load_decision(path) == {"foreground_lcc": False, "lcc_classes": {}}
