"""The one resolver: a work dir, model folder, package or nnU-Net folder -> configurations, folders, post-processing."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from inference_fixtures import make_model_dir

from segkit.errors import UserError
from segkit.models.package import export_model
from segkit.models.resolve import resolve_model
from segkit.planning.like import resolve_like_source
from segkit.training.pretrained import resolve_source

DECISION = {"foreground_lcc": True, "lcc_classes": {}}


def _nnunet_writer():
    """write_nnunet_folder from tests/models/test_nnunet.py (seeded synthetic nnU-Net v2 results folders)."""
    spec = importlib.util.spec_from_file_location("nnunet_folders", Path(__file__).with_name("test_nnunet.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.write_nnunet_folder


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SEGKIT_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def work(tmp_path) -> Path:
    """A work dir with 3d_fullres (folds 0, 1) and 2d (fold 0); find-best chose their ensemble."""
    work = tmp_path / "work"
    make_model_dir(work, "3d_fullres", num_channels=1, folds=("0", "1"))
    make_model_dir(work, "2d", num_channels=1, folds=("0",))
    (work / "find_best.json").write_text(json.dumps({"best": {"members": ["2d", "3d_fullres"]},
                                                     "postprocessing": DECISION}))
    return work


def test_work_dir_stands_for_find_bests_choice(work):
    choice = resolve_model(work)
    assert choice.model_dirs == {"2d": work / "models" / "2d", "3d_fullres": work / "models" / "3d_fullres"}
    assert choice.postprocessing == DECISION and choice.source == work
    undecided = resolve_model(work, decide=False)
    assert undecided.model_dirs == choice.model_dirs and undecided.postprocessing is None


def test_model_folder_is_its_own_configuration(work):
    folder = work / "models" / "3d_fullres"
    choice = resolve_model(folder)
    assert choice.model_dirs == {"3d_fullres": folder}
    assert choice.postprocessing is None and choice.note is not None   # find-best decided for the ensemble
    with pytest.raises(UserError, match="one configuration"):
        resolve_model(folder, ["2d", "3d_fullres"])


def test_package_resolves_to_its_verified_extraction(work, tmp_path):
    package, _ = export_model(work, tmp_path / "model.zip")
    choice = resolve_model(package)
    assert list(choice.model_dirs) == ["2d", "3d_fullres"] and choice.source == package
    assert choice.folds == {"2d": ["0"], "3d_fullres": ["0", "1"]} and choice.postprocessing == DECISION
    assert all((folder / "plans.json").is_file() and tmp_path / "cache" in folder.parents
               for folder in choice.model_dirs.values())
    with pytest.raises(UserError, match="not 3d_lowres"):
        resolve_model(package, "3d_lowres")


def test_nnunet_folder_is_converted_once_and_serves_predict_like_and_pretrained(tmp_path):
    folder = _nnunet_writer()(tmp_path / "results", folds=(0, 1))
    choice = resolve_model(folder)
    (name, converted), = choice.model_dirs.items()
    assert name == "3d_fullres" and tmp_path / "cache" in converted.parents and choice.source == converted
    assert sorted(p.name for p in converted.glob("fold_*")) == ["fold_0", "fold_1"]
    assert resolve_model(folder).model_dirs == choice.model_dirs   # the cached conversion is reused
    like = resolve_like_source(folder)
    assert like.configurations == ["3d_fullres"] and like.plans.num_channels == 2
    assert like.description.startswith(f"nnU-Net model folder {folder}")
    pretrained = resolve_source(str(folder), "3d_fullres", "1")
    assert pretrained.checkpoint == converted / "fold_1" / "checkpoint_final.pt"
    assert pretrained.plans == like.plans and "fold 1" in pretrained.description


def test_pretrained_from_a_model_folder_ignores_the_trained_configuration(work):
    """A model folder is its own configuration; only a work dir takes the configuration being trained."""
    source = resolve_source(str(work / "models" / "2d"), "3d_fullres")
    assert source.checkpoint == work / "models" / "2d" / "fold_0" / "checkpoint_final.pt"
    from_work = resolve_source(str(work), "3d_fullres", "1")
    assert from_work.checkpoint == work / "models" / "3d_fullres" / "fold_1" / "checkpoint_final.pt"
