"""choose-pruning: every UNet++ level scored on validation, the choice in pruning.json, prediction honours it."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from training_data import make_work_dir

from segkit.cli import main
from segkit.errors import UserError
from segkit.evaluation.choose_pruning import choose_level, choose_pruning, score_levels
from segkit.inference.model import load_model
from segkit.jsonio import canonical_sha256
from segkit.models.checkpoint import save_checkpoint
from segkit.models.package import package_members
from segkit.models.pruning import read_pruning, write_pruning
from segkit.networks import build_network
from segkit.training.splits import write_splits
from segkit.workdir import checkpoint_path, fold_dir, model_dir, plans_path, pruning_path, splits_path

pytestmark = pytest.mark.usefixtures("one_torch_thread")

UNETPP_ARCH = {"family": "unetpp", "spatial_dims": 3, "features_per_stage": [4, 8, 8],
               "kernel_sizes": [[1, 3, 3], [3, 3, 3], [3, 3, 3]], "strides": [[1, 1, 1], [1, 2, 2], [2, 2, 2]],
               "blocks_per_stage": [1, 1, 1], "decoder_blocks_per_stage": [1, 1], "norm": "instance",
               "deep_supervision": True}


@pytest.fixture(scope="module")
def unetpp_model(tmp_path_factory):
    """A work dir with a UNet++ model folder: plans, splits (2 folds), one seeded checkpoint per fold."""
    root = tmp_path_factory.mktemp("pruning")
    _, work = make_work_dir(root, num_cases=4)
    plans = json.loads(plans_path(work).read_text())
    entry = plans["configurations"]["3d_fullres"]
    entry["architecture"] = dict(UNETPP_ARCH)
    models = model_dir(work, "3d_fullres")
    models.mkdir(parents=True)
    plans_path(models).write_text(json.dumps(plans))
    cases = sorted(p.name[:-4] for p in (work / "preprocessed" / "3d_fullres").glob("*.npy")
                   if not p.name.endswith("_seg.npy"))
    write_splits(splits_path(models), [{"train": cases[2:], "val": cases[:2]}, {"train": cases[:2], "val": cases[2:]}])
    for fold in (0, 1):
        torch.manual_seed(fold)
        network = build_network(UNETPP_ARCH, plans["num_channels"], plans["num_outputs"])
        fold_dir(models, fold).mkdir()
        save_checkpoint(checkpoint_path(fold_dir(models, fold), "final"),
                        {"format": "segkit-checkpoint-1", "network_state": network.state_dict(),
                         "architecture": UNETPP_ARCH, "in_channels": plans["num_channels"],
                         "num_outputs": plans["num_outputs"], "configuration": "3d_fullres",
                         "plans_sha256": canonical_sha256(entry), "epoch": 0})
    return work, models


def test_choose_level_takes_the_shallowest_within_tolerance() -> None:
    """Within tolerance of the best mean Dice, the fewest nodes win; tolerance 0 keeps the best."""
    rows = [{"level": 1, "mean_dice": 0.80}, {"level": 2, "mean_dice": 0.893}, {"level": 3, "mean_dice": 0.9}]
    assert choose_level(rows, 0.0) == 3
    assert choose_level(rows, 0.01) == 2
    assert choose_level(rows, 0.2) == 1


def test_choose_pruning_scores_every_level_and_prediction_uses_the_choice(unetpp_model, tmp_path, capsys) -> None:
    """Both folds' validation cases are scored at levels 1..L; pruning.json holds the choice; load_model applies it."""
    work, models = unetpp_model
    assert main(["choose-pruning", str(work), "-c", "3d_fullres", "--device", "cpu", "--tolerance", "1.0"]) == 0
    out = capsys.readouterr().out
    assert "chosen prune level 1 of 2 (4 validation cases, folds 0, 1)" in out and "<- chosen" in out
    record = read_pruning(models)
    assert record is not None and record["prune_level"] == 1 and record["depth"] == 2
    assert [row["level"] for row in record["levels"]] == [1, 2]
    assert all(row["seconds"] > 0 and 0.0 <= row["mean_dice"] <= 1.0 for row in record["levels"])
    loaded = load_model(models, device="cpu")
    assert loaded.network.prune_level == 1 and loaded.network.deep_supervision is False
    members, _ = package_members(models)
    assert members["3d_fullres/pruning.json"] == pruning_path(models)   # export-model carries the choice
    record, path = choose_pruning(models, tolerance=0.0, device="cpu")
    best = max(row["mean_dice"] for row in record["levels"])
    assert path == pruning_path(models)
    assert record["prune_level"] == min(r["level"] for r in record["levels"] if r["mean_dice"] == best)


def test_score_levels_on_given_cases_scores_them_with_every_fold(unetpp_model) -> None:
    """case_ids (held-out cases) are scored with each fold's weights; a fold's own validation cases give its Dice."""
    _, models = unetpp_model
    splits = json.loads(splits_path(models).read_text())
    fold0 = load_model(models, folds=["0"], device="cpu")
    on_validation = score_levels(fold0, [1, 2])
    given = score_levels(fold0, [1, 2], case_ids=splits[0]["val"])
    assert [r["dice"] for r in given] == [r["dice"] for r in on_validation]
    both = load_model(models, device="cpu")
    other = score_levels(both, [1, 2], case_ids=splits[1]["val"][:1])
    assert all(row["cases"] == 2 for row in other)   # one case, scored by folds 0 and 1
    assert [r["dice"] for r in other] != [r["dice"] for r in given]


def test_pruning_file_is_checked(unetpp_model, tmp_path) -> None:
    """A level outside 1..depth or a depth unlike the network's is a UserError naming pruning.json."""
    _, models = unetpp_model
    copy = tmp_path / "model"
    shutil.copytree(models, copy)
    write_pruning(copy, {"prune_level": 3, "depth": 2, "levels": []})
    with pytest.raises(UserError, match="between 1 and depth"):
        read_pruning(copy)
    write_pruning(copy, {"prune_level": 2, "depth": 3, "levels": []})
    with pytest.raises(UserError, match="does not fit this network"):
        load_model(copy, device="cpu")


def test_choose_pruning_refuses_a_network_without_levels(unetpp_model, tmp_path) -> None:
    """A plain U-Net model folder has nothing to prune: one clear message."""
    work, models = unetpp_model
    copy = tmp_path / "work"
    shutil.copytree(work, copy, ignore=shutil.ignore_patterns("*.npy"))
    unet_models = model_dir(copy, "3d_fullres")
    pruning_path(unet_models).unlink(missing_ok=True)
    plans = json.loads(plans_path(unet_models).read_text())
    channels, outputs = plans["num_channels"], plans["num_outputs"]
    arch = {**UNETPP_ARCH, "family": "unet"}
    payload = {"format": "segkit-checkpoint-1", "network_state": build_network(arch, channels, outputs).state_dict(),
               "architecture": arch, "in_channels": channels, "num_outputs": outputs, "configuration": "3d_fullres",
               "plans_sha256": "0" * 64, "epoch": 0}
    for fold in (0, 1):
        save_checkpoint(checkpoint_path(fold_dir(unet_models, fold), "final"), payload)
    with pytest.raises(UserError, match="needs a prunable network"):
        choose_pruning(unet_models, device="cpu")
