"""Which model folder and configuration a path names, and its folds' checkpoints (segkit.models.folder)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from inference_fixtures import make_model_dir

from segkit.errors import UserError
from segkit.models.folder import find_folds, previous_stage_dir, resolve_model_dir


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    """A work dir with 3d_fullres (folds 0 and 1, final + best of fold 1) and 2d (fold 0)."""
    work = tmp_path_factory.mktemp("work")
    make_model_dir(work, "3d_fullres", num_channels=1, folds=("0", "1"))
    make_model_dir(work, "3d_fullres", num_channels=1, folds=("1",), checkpoint="best")
    make_model_dir(work, "2d", num_channels=1, folds=("0",))
    return work


def test_work_dir_names_a_configuration_default_3d_fullres(work):
    assert resolve_model_dir(work, None) == (work / "models" / "3d_fullres", "3d_fullres")
    assert resolve_model_dir(work, "2d") == (work / "models" / "2d", "2d")
    with pytest.raises(UserError, match="no trained configuration '3d_lowres'"):
        resolve_model_dir(work, "3d_lowres")


def test_model_folder_is_its_own_configuration(work, tmp_path):
    folder = work / "models" / "2d"
    assert resolve_model_dir(folder, None) == (folder, "2d")
    with pytest.raises(UserError, match="holds the 2d model, not 3d_fullres"):
        resolve_model_dir(folder, "3d_fullres")
    renamed = tmp_path / "my_model"   # a copied folder under another name: plans.json names two configurations
    shutil.copytree(folder, renamed)
    with pytest.raises(UserError, match="cannot tell the configuration; pass -c"):
        resolve_model_dir(renamed, None)
    assert resolve_model_dir(renamed, "2d") == (renamed, "2d")
    with pytest.raises(UserError, match="model folder not found"):
        resolve_model_dir(tmp_path / "absent", None)


def test_folds_holding_the_checkpoint(work):
    folder = work / "models" / "3d_fullres"
    assert [fold for fold, _ in find_folds(folder, None, "final")] == ["0", "1"]
    assert find_folds(folder, None, "best") == [("1", folder / "fold_1" / "checkpoint_best.pt")]
    assert find_folds(folder, ["1"], "final") == [("1", folder / "fold_1" / "checkpoint_final.pt")]
    with pytest.raises(UserError, match="fold 0 has no checkpoint_best.pt"):
        find_folds(folder, ["0"], "best")
    with pytest.raises(UserError, match="no fold_\\*/checkpoint_latest.pt found"):
        find_folds(folder, None, "latest")
    with pytest.raises(UserError, match="--checkpoint must be one of final, best, latest"):
        find_folds(folder, None, "last")


def test_previous_stage_is_looked_up_beside_the_stage(work):
    assert previous_stage_dir(work / "models" / "3d_fullres", "3d_fullres", "2d") == work / "models" / "2d"
    with pytest.raises(UserError, match="its previous stage 3d_lowres is needed beside it"):
        previous_stage_dir(work / "models" / "3d_fullres", "3d_cascade_fullres", "3d_lowres")
