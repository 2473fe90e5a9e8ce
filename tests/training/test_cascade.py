"""A cascade stage's training inputs: the previous stage's split and CV label maps, missing folds named."""

from __future__ import annotations

import json

import numpy as np
import pytest
from training_data import make_cascade_work_dir

from segkit.cli import main
from segkit.io.image import read_image
from segkit.preprocessing.previous_stage import previous_labels_into
from segkit.training.loader import open_case
from segkit.training.prepare import prepare_setup
from segkit.training.request import TrainRequest

TINY_RUN = ["--epochs", "1", "--iterations-per-epoch", "1", "--quiet", "--num-workers", "0", "--threads", "1",
            "--device", "cpu"]


@pytest.fixture(scope="module")
def half_trained(tmp_path_factory):
    """The cascade phantom with 3d_lowres fold 0 trained (its validation cases predicted), fold 1 not."""
    dataset, work = make_cascade_work_dir(tmp_path_factory.mktemp("cascade"))
    assert main(["train", str(dataset), "--work-dir", str(work), "-c", "3d_lowres", "-f", "0", *TINY_RUN]) == 0
    return dataset, work


def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0]
    return err[0]


def test_lowres_training_predicts_its_validation_cases_by_default(half_trained):
    _, work = half_trained
    folder = work / "models" / "3d_lowres" / "fold_0" / "validation"
    splits = json.loads((work / "models" / "3d_lowres" / "splits.json").read_text())
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        f"{case}{suffix}" for case in splits[0]["val"] for suffix in (".npz", ".nii.gz"))


def test_missing_previous_stage_folds_are_named(half_trained, capsys):
    dataset, work = half_trained
    capsys.readouterr()
    assert main(["train", str(dataset), "--work-dir", str(work), "-c", "3d_cascade_fullres", "-f", "0",
                 *TINY_RUN]) == 2
    line = _error_line(capsys)
    assert "3d_lowres's cross-validation predictions, missing for fold(s) 1 (2 case(s))" in line
    assert "--predict-missing" in line
    assert not (work / "models" / "3d_cascade_fullres" / "fold_0").exists()


def test_cascade_uses_the_previous_stage_split_and_its_held_out_predictions(half_trained, capsys):
    dataset, work = half_trained
    assert main(["train", str(dataset), "--work-dir", str(work), "-c", "3d_lowres", "-f", "1", *TINY_RUN]) == 0
    setup = prepare_setup(TrainRequest(dataset, "3d_cascade_fullres", "1", work), _single(), "cpu", 0.0)
    lowres_splits = json.loads((work / "models" / "3d_lowres" / "splits.json").read_text())
    assert json.loads((work / "models" / "3d_cascade_fullres" / "splits.json").read_text()) == lowres_splits
    assert setup.in_channels == 4 + 3 and setup.previous_classes == [[1], [2], [3]] and setup.predict_validation
    for case in setup.train_cases:       # fold 1 trains on fold 0's validation cases, as lowres fold 0 saw them
        held_out = read_image(work / "models" / "3d_lowres" / "fold_0" / "validation" / f"{case.case_id}.nii.gz")
        assert np.array_equal(case.previous, previous_labels_into(held_out.array, case.properties))
        assert case.data.shape[0] == 4
    for case in setup.val_cases:         # validation feeds the one-hot channels after the image channels
        held_out = read_image(work / "models" / "3d_lowres" / "fold_1" / "validation" / f"{case.case_id}.nii.gz")
        previous = previous_labels_into(held_out.array, case.properties)
        inputs = case.network_input()
        assert inputs.shape[0] == 7 and np.array_equal(inputs[4 + 1], previous == 2)
        original = open_case(work / "preprocessed" / "3d_cascade_fullres", case.case_id)
        assert np.array_equal(inputs[:4], original.data)
        region = (slice(1, 5), slice(2, 9), slice(0, 7))
        assert np.array_equal(case.network_input(region), inputs[(slice(None), *region)])
    own = work / "models" / "3d_cascade_fullres" / "splits.json"
    own.write_text(json.dumps(lowres_splits[::-1]))
    capsys.readouterr()
    assert main(["train", str(dataset), "--work-dir", str(work), "-c", "3d_cascade_fullres", "-f", "0",
                 *TINY_RUN]) == 2
    assert "splits.json differs from 3d_lowres's" in _error_line(capsys)


def _single():
    from segkit.training.distributed import DistInfo

    return DistInfo()
