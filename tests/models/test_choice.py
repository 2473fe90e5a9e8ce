"""Which configurations a work dir or model folder stands for (segkit.models.choice), and the post-processing that
goes with exactly those: find-best's choice, -c, a decision made for another model noted or refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from inference_fixtures import tiny_plans

from segkit.errors import UserError
from segkit.jsonio import write_json
from segkit.models.choice import chosen_model, configuration_names

DECISION = {"foreground_lcc": True, "lcc_classes": {"edema": [2]}}


def _work(tmp_path: Path, best: list[str] | None = None) -> Path:
    """WORK/models/{3d_fullres,2d} with their plans.json; find_best.json choosing `best` (with DECISION) if given."""
    work = tmp_path / "work"
    for name in ("3d_fullres", "2d"):
        write_json(work / "models" / name / "plans.json", tiny_plans())
    if best is not None:
        write_json(work / "find_best.json", {"best": {"members": best}, "postprocessing": DECISION})
    return work


@pytest.mark.parametrize("value, names", [(None, None), ([], None), ("2d", ["2d"]), (("3d_fullres", "2d"),
                                                                                    ["3d_fullres", "2d"])])
def test_dash_c_becomes_a_list_of_names(value, names):
    assert configuration_names(value) == names


def test_a_work_dir_runs_find_bests_choice_with_its_post_processing(tmp_path):
    work = _work(tmp_path, best=["3d_fullres", "2d"])
    choice = chosen_model(work)
    assert choice.model_dirs == {"3d_fullres": work / "models" / "3d_fullres", "2d": work / "models" / "2d"}
    assert choice.postprocessing == DECISION and choice.note is None and choice.source == work


def test_without_find_best_a_work_dir_runs_3d_fullres_without_post_processing(tmp_path):
    choice = chosen_model(_work(tmp_path))
    assert list(choice.model_dirs) == ["3d_fullres"] and choice.postprocessing is None and choice.note is None


def test_another_configuration_runs_without_the_decision_and_says_why(tmp_path):
    work = _work(tmp_path, best=["3d_fullres", "2d"])
    choice = chosen_model(work, "2d")
    assert list(choice.model_dirs) == ["2d"] and choice.postprocessing is None
    assert choice.note == "find-best chose 3d_fullres+2d; 2d runs without its post-processing"
    # a model folder inside a work dir finds the work dir's find_best.json the same way
    assert chosen_model(work / "models" / "2d").note == choice.note
    with pytest.raises(UserError, match="made for 3d_fullres\\+2d, not 2d"):
        chosen_model(work, "2d", find_best=work / "find_best.json")   # given explicitly: a mismatch is an error


def test_a_decision_without_members_is_noted_or_refused_when_given(tmp_path):
    work = _work(tmp_path)
    write_json(work / "find_best.json", {"postprocessing": DECISION})
    choice = chosen_model(work, "3d_fullres")
    assert choice.postprocessing is None and "no best.members" in choice.note
    with pytest.raises(UserError, match="no best.members"):
        chosen_model(work, "3d_fullres", find_best=work / "find_best.json")
    with pytest.raises(UserError, match="post-processing decision not found"):
        chosen_model(work, "3d_fullres", find_best=tmp_path / "missing.json")


def test_decide_false_skips_the_decision_and_refusals_name_the_folder(tmp_path):
    work = _work(tmp_path, best=["2d"])
    (work / "find_best.json").write_text("{not json")
    assert chosen_model(work, "3d_fullres", decide=False).postprocessing is None    # the broken file is not read
    with pytest.raises(UserError, match="model folder not found"):
        chosen_model(tmp_path / "nope")
    with pytest.raises(UserError, match="a model folder holds one configuration"):
        chosen_model(work / "models" / "2d", ["3d_fullres", "2d"])
