"""Training recipes: nnU-Net's vs the short CPU budget recipe (choice rule, optimiser, sampling, record)."""

import json

import numpy as np
import pytest
import torch
from training_data import copy_work, make_work_dir

from segkit.cli import main as segkit_main
from segkit.training.loader import PatchSampler, open_case
from segkit.training.recipe import NNUNET, SHORT_CPU, build_optimizer, choose_recipe


def test_short_cpu_recipe_only_for_short_cpu_budgets():
    assert choose_recipe("auto", "cpu", 8.0)[0] is SHORT_CPU
    assert choose_recipe("auto", "cpu", 30.0)[0] is NNUNET          # long budget: nnU-Net's recipe
    assert choose_recipe("auto", "cpu", None)[0] is NNUNET          # no budget
    assert choose_recipe("auto", "cuda", 8.0)[0] is NNUNET          # GPU
    assert choose_recipe("nnunet", "cpu", 8.0)[0] is NNUNET and choose_recipe("short-cpu", "cuda", None)[0] is SHORT_CPU
    model = torch.nn.Linear(2, 2)
    assert isinstance(build_optimizer(model.parameters(), "adamw", 1e-3, 0.9, 1e-4), torch.optim.AdamW)
    sgd = build_optimizer(model.parameters(), "sgd", 1e-2, 0.99, 3e-5)
    assert sgd.defaults["nesterov"] and sgd.defaults["momentum"] == 0.99


def _two_class_case(folder, case_id):
    """A case with one large (class 1, 400 voxels) and one tiny (class 2, 8 voxels) structure, far apart."""
    data = np.random.default_rng(0).standard_normal((1, 20, 30, 30)).astype(np.float32)
    seg = np.zeros((20, 30, 30), np.int16)
    seg[2:6, 2:12, 2:12] = 1
    seg[16:18, 26:28, 26:28] = 2
    np.save(folder / f"{case_id}.npy", data)
    np.save(folder / f"{case_id}_seg.npy", seg)
    locations = {str(k): np.argwhere(seg == k).tolist() for k in (1, 2)}
    (folder / f"{case_id}.json").write_text(json.dumps({"case_id": case_id, "class_locations": locations}))
    return open_case(folder, case_id, 1)


def test_every_patch_on_foreground_and_classes_balanced(tmp_path):
    case = _two_class_case(tmp_path, "c0")
    sampler = PatchSampler([case], [4, 6, 6], batch_size=2, foreground_fraction=1.0)
    seen = {1: 0, 2: 0}
    for seed in range(60):
        seg = sampler.sample(np.random.default_rng(seed))["seg"]
        for patch in seg:
            present = [k for k in (1, 2) if (patch == k).any()]
            assert present                               # every patch holds foreground
            for k in present:
                seen[k] += 1
    # the 8-voxel class is a centre about as often as the 400-voxel one (uniform over classes)
    assert 0.35 < seen[2] / (seen[1] + seen[2]) < 0.65
    default = PatchSampler([case], [4, 6, 6], batch_size=2)   # nnU-Net: only the last of 2 is forced
    first = [bool((default.sample(np.random.default_rng(s))["seg"][0] > 0).any()) for s in range(30)]
    assert not all(first)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    return make_work_dir(tmp_path_factory.mktemp("recipe"))


def test_short_cpu_recipe_trains_with_adamw_and_is_recorded(prepared, tmp_path):
    dataset, work = copy_work(*prepared, tmp_path)
    assert segkit_main(["train", str(dataset), "--work-dir", str(work), "-f", "0", "--recipe", "short-cpu",
                        "--epochs", "1", "--iterations-per-epoch", "2", "--quiet", "--num-workers", "0",
                        "--threads", "1"]) == 0
    fold = work / "models" / "3d_fullres" / "fold_0"
    schedule = json.loads((fold / "schedule.json").read_text())
    assert schedule["recipe"]["name"] == "short_cpu_budget" and schedule["recipe"]["optimizer"] == "adamw"
    assert schedule["recipe"]["reason"] == "--recipe short-cpu"
    assert any("augmentation light" in note for note in schedule["notes"])
    # anatomical mirroring (the phantom's labels are not lateralised): left/right only, in training and in
    # the model's plans, which the predictor's TTA reads
    assert schedule["recipe"]["mirroring"] == "anatomical"
    assert any("left/right only" in note and "mirror_axes [2]" in note for note in schedule["notes"])
    model_plans = json.loads((work / "models" / "3d_fullres" / "plans.json").read_text())
    assert model_plans["configurations"]["3d_fullres"]["mirror_axes"] == [2]
    assert json.loads((work / "plans.json").read_text())["configurations"]["3d_fullres"]["mirror_axes"] == [0, 1, 2]
    final = torch.load(fold / "checkpoint_final.pt", weights_only=True)
    assert all("exp_avg" in s for s in final["optimizer_state"]["state"].values())   # AdamW moments
    assert final["optimizer_state"]["param_groups"][0]["lr"] < SHORT_CPU.lr          # poly decay from the recipe's lr


def test_recipe_fields_are_overridden_one_by_one_and_checked():
    from segkit.errors import UserError
    from segkit.training.recipe import parse_overrides

    changed = NNUNET.override({"lr": 3e-3, "grad_clip": 1.0, "epochs": None})
    assert (changed.lr, changed.grad_clip, changed.epochs, changed.optimizer) == (3e-3, 1.0, 1000, "sgd")
    assert NNUNET.lr == 1e-2                                        # the named recipe is not touched
    assert parse_overrides(["lr=0.003", "optimizer=adamw", "batch-dice=auto", "elastic=yes", "epochs=12"]) == {
        "lr": 0.003, "optimizer": "adamw", "batch_dice": None, "elastic": True, "epochs": 12}
    for bad in (["lr"], ["colour=red"], ["epochs=many"], ["elastic=maybe"]):
        with pytest.raises(UserError):
            parse_overrides(bad)
    for bad in ({"optimizer": "lion"}, {"loss": "focal"}, {"epochs": 0}, {"foreground_fraction": 1.5}, {"nme": 1}):
        with pytest.raises(UserError):
            NNUNET.override(bad)


def test_recipe_set_reaches_the_optimiser_and_schedule_json(prepared, tmp_path, capsys):
    dataset, work = copy_work(*prepared, tmp_path)
    args = ["train", str(dataset), "--work-dir", str(work), "-f", "0", "--epochs", "1", "--iterations-per-epoch", "2",
            "--quiet", "--num-workers", "0", "--threads", "1"]
    assert segkit_main(args + ["--recipe-set", "lr=0.002", "--recipe-set", "grad_clip=0.5",
                               "--recipe-set", "lr_exponent=2"]) == 0
    fold = work / "models" / "3d_fullres" / "fold_0"
    schedule = json.loads((fold / "schedule.json").read_text())
    assert schedule["recipe"]["name"] == "nnunet" and schedule["recipe"]["lr"] == 0.002
    assert schedule["recipe"]["overrides"] == {"epochs": 1, "iterations_per_epoch": 2, "lr": 0.002,
                                               "grad_clip": 0.5, "lr_exponent": 2.0}
    assert schedule["speed"] == {"channels_last": False, "compile": "off", "cudnn_benchmark": False}
    log = [json.loads(line) for line in (fold / "log.jsonl").read_text().splitlines()]
    assert log[0]["lr"] == pytest.approx(0.002 * (1 - 1 / 2) ** 2)    # second step of 2, exponent 2
    capsys.readouterr()
    assert segkit_main(args + ["--recipe-set", "optimizer=lion"]) == 2
    assert "recipe optimizer must be one of sgd, adamw" in capsys.readouterr().err
