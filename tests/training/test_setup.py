"""What one training run needs (segkit.training.setup.TrainSetup): the facts derived from plans, a cascade stage's
extra inputs, the batch-Dice choice, and the recipe as schedule.json records it."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import pytest
import torch
from inference_fixtures import tiny_plans

from segkit.plans import Plans
from segkit.training.recipe import NNUNET
from segkit.training.setup import TrainSetup


def _setup(plans: dict, configuration: str = "3d_fullres", **changes) -> TrainSetup:
    typed = Plans.from_json(plans)
    return TrainSetup(Path("fold_0"), typed, typed.configuration(configuration), [], [], torch.device("cpu"),
                      **changes)


def test_a_softmax_plan_gives_classes_and_background_one_output_per_class():
    plans = tiny_plans(num_channels=2)
    setup = _setup(plans)
    assert (setup.spatial_dims, setup.in_channels, setup.num_outputs, setup.label_mode) == (3, 2, 4, "softmax")
    assert setup.output_names == ["necrosis", "edema", "enhancing"]
    assert setup.regions == [[1], [2], [3]] and setup.ignore_label is None and setup.previous_classes is None


def test_a_region_plan_gives_overlapping_regions_and_a_sparse_one_its_ignore_label():
    plans = tiny_plans(num_channels=4, region_based=True)
    setup = _setup(plans, "2d")
    assert (setup.spatial_dims, setup.num_outputs, setup.label_mode) == (2, 3, "sigmoid")
    assert setup.regions == [[1, 2, 3], [1, 3], [3]]
    assert _setup({**plans, "ignore_label": 4}).ignore_label == 4


def test_a_cascade_stage_takes_the_previous_stages_one_hot_as_extra_inputs():
    plans = copy.deepcopy(tiny_plans(num_channels=2))
    plans["configurations"]["3d_lowres"] = plans["configurations"]["3d_fullres"]
    plans["configurations"]["3d_cascade_fullres"] = {**plans["configurations"]["3d_fullres"],
                                                     "previous_stage": "3d_lowres"}
    setup = _setup(plans, "3d_cascade_fullres")
    assert setup.previous_classes == [[1], [2], [3]]
    assert setup.in_channels == 2 + 3 and _setup(plans).in_channels == 2


@pytest.mark.parametrize("configuration, entry_value, recipe_value, expected", [
    ("3d_fullres", None, None, True), ("2d", None, None, False),     # nnU-Net: batch Dice in 3D, per sample in 2D
    ("2d", True, None, True), ("3d_fullres", None, False, False),    # the plan's entry, then the recipe, decide
    ("3d_fullres", True, False, False),
])
def test_batch_dice_follows_the_recipe_then_the_plan_then_the_dimension(configuration, entry_value, recipe_value,
                                                                       expected):
    plans = copy.deepcopy(tiny_plans())
    if entry_value is not None:
        plans["configurations"][configuration]["batch_dice"] = entry_value
    recipe = dataclasses.replace(NNUNET, batch_dice=recipe_value)
    assert _setup(plans, configuration, recipe=recipe).use_batch_dice is expected


def test_the_recipe_record_holds_every_field_the_reason_and_the_overrides():
    recipe = dataclasses.replace(NNUNET, batch_dice=False)
    record = _setup(tiny_plans(), recipe=recipe, recipe_reason="--recipe nnunet", recipe_overrides={"batch_dice": False}
                    ).recipe_record()
    assert record == {**recipe.to_dict(), "reason": "--recipe nnunet", "overrides": {"batch_dice": False}}
    assert record["batch_dice"] is False
