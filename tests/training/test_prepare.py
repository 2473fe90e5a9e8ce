"""Preparing one training run (segkit.training.prepare): the fold argument, who predicts its validation cases, and
prepare_setup's phases on a preprocessed phantom: the split, the model dir, the cases, the refusals before work."""

from __future__ import annotations

import copy
import json

import pytest
from inference_fixtures import tiny_plans
from training_data import copy_work, make_work_dir

from segkit.errors import UserError
from segkit.plans import Plans
from segkit.training.distributed import DistInfo
from segkit.training.prepare import parse_fold, predicts_validation, prepare_setup
from segkit.training.request import TrainRequest


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """A planned and preprocessed 5-case phantom with a tiny U-Net (read-only: copy before training)."""
    return make_work_dir(tmp_path_factory.mktemp("prepare"))


@pytest.mark.parametrize("text, fold", [("all", None), ("ALL", None), ("0", 0), ("4", 4)])
def test_a_fold_is_0_to_4_or_all(text, fold):
    assert parse_fold(text) == fold


@pytest.mark.parametrize("text, words", [("5", "fold 5 is out of range"), ("-1", "fold -1 is out of range"),
                                         ("first", "fold must be 0..4 or 'all', got 'first'")])
def test_any_other_fold_is_a_user_error(text, words):
    with pytest.raises(UserError, match=words):
        parse_fold(text)


def test_validation_is_predicted_as_asked_else_for_both_stages_of_a_cascade():
    raw = copy.deepcopy(tiny_plans())
    plain = Plans.from_json(raw)
    raw["configurations"]["3d_lowres"] = raw["configurations"]["3d_fullres"]
    raw["configurations"]["3d_cascade_fullres"] = {**raw["configurations"]["3d_fullres"],
                                                   "previous_stage": "3d_lowres"}
    cascade = Plans.from_json(raw)
    assert not predicts_validation(TrainRequest("D", "3d_fullres"), plain, 0)
    assert predicts_validation(TrainRequest("D", "3d_fullres", predict_validation=True), plain, 0)
    assert predicts_validation(TrainRequest("D", "3d_lowres"), cascade, 0)
    assert predicts_validation(TrainRequest("D", "3d_cascade_fullres"), cascade, 2)
    assert not predicts_validation(TrainRequest("D", "3d_cascade_fullres", predict_validation=False), cascade, 2)
    assert not predicts_validation(TrainRequest("D", "3d_lowres"), cascade, None)     # fold 'all' has no validation


def test_a_fold_gets_its_split_cases_and_model_dir(prepared, tmp_path):
    dataset, work = copy_work(*prepared, tmp_path)
    setup = prepare_setup(TrainRequest(dataset, "3d_fullres", "1", work, predict_validation=False), DistInfo(), "cpu",
                          0.0)
    models = work / "models" / "3d_fullres"
    splits = json.loads((models / "splits.json").read_text())
    assert len(splits) == 5
    assert [c.case_id for c in setup.train_cases] == splits[1]["train"]
    assert [c.case_id for c in setup.val_cases] == splits[1]["val"]
    assert set(splits[1]["train"]).isdisjoint(splits[1]["val"]) and len(splits[1]["train"] + splits[1]["val"]) == 5
    assert setup.fold_dir == models / "fold_1" and setup.fold_dir.is_dir()
    assert json.loads((models / "plans.json").read_text())["configurations"]["3d_fullres"]["patch_size"] == \
        list(setup.configuration.patch_size)
    assert (models / "dataset.json").is_file() and setup.device.type == "cpu" and setup.recipe_reason
    assert setup.predict_validation is False and setup.configuration.name == "3d_fullres"
    everything = prepare_setup(TrainRequest(dataset, "3d_fullres", "all", work), DistInfo(), "cpu", 0.0)
    assert len(everything.train_cases) == 5 and everything.fold_dir == models / "fold_all"


def test_requests_that_cannot_run_are_refused_before_any_file_is_written(prepared, tmp_path):
    dataset, work = copy_work(*prepared, tmp_path)
    with pytest.raises(UserError, match="--time-budget must be a positive number of minutes"):
        prepare_setup(TrainRequest(dataset, "3d_fullres", "0", work, time_budget_min=0), DistInfo(), "cpu", 0.0)
    with pytest.raises(UserError, match="--resume: no checkpoint_latest.pt"):
        prepare_setup(TrainRequest(dataset, "3d_fullres", "0", work, resume=True), DistInfo(), "cpu", 0.0)
    assert not (work / "models" / "3d_fullres" / "fold_0").exists()
    fold = work / "models" / "3d_fullres" / "fold_0"
    fold.mkdir(parents=True)
    (fold / "checkpoint_final.pt").write_bytes(b"a trained model")
    with pytest.raises(UserError, match="this fold is already trained"):
        prepare_setup(TrainRequest(dataset, "3d_fullres", "0", work), DistInfo(), "cpu", 0.0)
    assert (fold / "checkpoint_final.pt").read_bytes() == b"a trained model"
