"""Where cross-validation predictions are and how they become labels (segkit.evaluation.cv_predictions): every fold's
validation cases found or the missing ones named, --cv-dir parsed, label conversion from plans checked."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from inference_fixtures import tiny_plans

from segkit.errors import UserError
from segkit.evaluation.cv_predictions import (
    cv_files_from_dir,
    cv_files_from_splits,
    cv_status,
    label_conversion,
    output_classes,
    parse_cv_dirs,
    probabilities_to_labels,
)
from segkit.plans import Plans
from segkit.training.splits import write_splits

SPLITS = [{"train": ["c", "d"], "val": ["a", "b"]}, {"train": ["a", "b"], "val": ["c", "d"]}]


def _work(tmp_path: Path, written: dict[int, list[str]]) -> Path:
    """A work dir whose 3d_fullres has SPLITS and the given validation .npz files per fold (2d has no splits)."""
    work = tmp_path / "work"
    write_splits(work / "models" / "3d_fullres" / "splits.json", SPLITS)
    for fold, cases in written.items():
        folder = work / "models" / "3d_fullres" / f"fold_{fold}" / "validation"
        folder.mkdir(parents=True, exist_ok=True)
        for case in cases:
            (folder / f"{case}.npz").write_bytes(b"")
    return work


def test_every_folds_validation_cases_are_found_and_the_configuration_is_complete(tmp_path):
    work = _work(tmp_path, {0: ["a", "b"], 1: ["c", "d"]})
    files = cv_files_from_splits(work, "3d_fullres")
    assert {case: path.relative_to(work).as_posix() for case, path in files.items()} == {
        "a": "models/3d_fullres/fold_0/validation/a.npz", "b": "models/3d_fullres/fold_0/validation/b.npz",
        "c": "models/3d_fullres/fold_1/validation/c.npz", "d": "models/3d_fullres/fold_1/validation/d.npz"}
    assert cv_status(work, Plans.from_json(tiny_plans())) == {"3d_fullres": "complete"}   # 2d: no model folder, not listed


def test_missing_predictions_are_counted_and_named(tmp_path):
    work = _work(tmp_path, {0: ["a", "b"], 1: ["d"]})
    assert cv_status(work, Plans.from_json(tiny_plans())) == {"3d_fullres": "1 CV prediction(s) missing"}
    with pytest.raises(UserError, match=r"1 cross-validation probability file\(s\) missing, e\.g\. .*fold_1.*c\.npz"):
        cv_files_from_splits(work, "3d_fullres")


def test_a_cv_dir_holds_a_configurations_cases_and_is_given_as_config_equals_dir(tmp_path):
    (tmp_path / "cv").mkdir()
    for name in ("b.npz", "a.npz", ".a.npz.tmp", "a.nii.gz"):
        (tmp_path / "cv" / name).write_bytes(b"")
    assert cv_files_from_dir(tmp_path / "cv") == {"a": tmp_path / "cv" / "a.npz", "b": tmp_path / "cv" / "b.npz"}
    with pytest.raises(UserError, match="folder not found"):
        cv_files_from_dir(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no <CASE>.npz"):
        cv_files_from_dir(tmp_path / "empty")
    assert parse_cv_dirs(["2d=/x/y", "3d_fullres=rel=ative"]) == {"2d": Path("/x/y"), "3d_fullres": Path("rel=ative")}
    assert parse_cv_dirs(None) == {}
    for bad in ("2d", "=x", "2d="):
        with pytest.raises(UserError, match="expected CONFIG=DIR"):
            parse_cv_dirs([bad])


def test_softmax_probabilities_become_the_argmax_and_regions_are_painted_in_order():
    softmax = label_conversion(Plans.from_json(tiny_plans()))
    assert softmax.num_outputs == 4 and softmax.label_mode == "softmax"
    probs = np.zeros((4, 1, 1, 3), np.float32)
    probs[[0, 2, 3], 0, 0, [0, 1, 2]] = 1.0
    assert probabilities_to_labels(probs, softmax).ravel().tolist() == [0, 2, 3]
    region_plans = Plans.from_json(tiny_plans(region_based=True))
    regions = label_conversion(region_plans)    # whole tumour [1,2,3], core [1,3], enhancing [3]
    assert regions.num_outputs == 3 and regions.regions_class_order == [2, 1, 3]
    sigmoid = np.zeros((3, 1, 1, 4), np.float32)
    sigmoid[0, 0, 0, 1:] = 0.9          # voxels 1-3 in the whole tumour
    sigmoid[1, 0, 0, 2:] = 0.9          # 2-3 in the core
    sigmoid[2, 0, 0, 3] = 0.9           # 3 enhancing
    assert probabilities_to_labels(sigmoid, regions).ravel().tolist() == [0, 2, 1, 3]
    assert output_classes(region_plans) == {"whole tumor": [1, 2, 3], "tumor core": [1, 3], "enhancing tumor": [3]}


def test_plans_without_outputs_or_region_order_are_refused():
    broken = {**tiny_plans(region_based=True), "regions_class_order": [2, 1]}
    with pytest.raises(UserError, match="one value per region"):
        label_conversion(Plans.from_json(broken))
    with pytest.raises(UserError, match="no 'outputs'"):
        output_classes(Plans.from_json({**tiny_plans(), "outputs": {}}))
