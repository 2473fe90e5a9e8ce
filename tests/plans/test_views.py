"""segkit.plans.views: the typed views parse what the planner writes, keep one default per key, refuse bad entries."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from plans_helpers import view as plan_view

from segkit.errors import UserError
from segkit.plans import (
    LabelCoding,
    Plans,
    read_plans,
    stride_product,
    total_strides,
    with_configuration,
)


def test_views_match_the_written_file(planned: tuple[dict, Path]) -> None:
    plans, work = planned
    view = read_plans(work / "plans.json")
    assert view.num_channels == plans["num_channels"] == 4
    assert view.num_outputs == plans["num_outputs"]
    assert view.label_mode == plans["label_mode"]
    assert set(view.configurations) == set(plans["configurations"])
    for name, entry in plans["configurations"].items():
        config = view.configuration(name)
        assert list(config.patch_size) == entry["patch_size"]
        assert config.spatial_dims == len(entry["patch_size"])
        assert config.architecture.family == entry["architecture"]["family"]
        assert config.architecture.as_dict() == entry["architecture"]
        for size, total in zip(config.patch_size, config.architecture.total_strides):
            assert size % total == 0
        assert (config.slice_axis is None) == (config.spatial_dims == 3)



def test_views_are_read_only(planned: tuple[dict, Path]) -> None:
    view = read_plans(planned[1] / "plans.json")
    with pytest.raises(AttributeError):
        view.num_outputs = 3  # type: ignore[misc]
    with pytest.raises(TypeError):
        view.configurations["x"] = None  # type: ignore[index]



def test_defaults_live_in_one_place(planned: tuple[dict, Path]) -> None:
    plans = copy.deepcopy(planned[0])
    del plans["label_mode"]
    entry = plans["configurations"]["3d_fullres"]
    del entry["architecture"]["norm"], entry["architecture"]["deep_supervision"]
    view = Plans.from_json(plans)
    assert view.label_mode == "softmax"
    assert view.configuration("3d_fullres").architecture.norm == "instance"
    assert view.configuration("3d_fullres").architecture.deep_supervision is True



def test_unknown_configuration_lists_the_known(planned: tuple[dict, Path]) -> None:
    view = read_plans(planned[1] / "plans.json")
    with pytest.raises(UserError, match="3d_fullres"):
        view.configuration("3d_cascade")



def test_stride_product_is_defined_once(planned: tuple[dict, Path]) -> None:
    plans, work = planned
    arch = plans["configurations"]["3d_fullres"]["architecture"]
    assert stride_product([[1, 1, 1], [1, 2, 2], [2, 2, 2]]) == [2, 4, 4]
    view = read_plans(work / "plans.json").configuration("3d_fullres").architecture
    assert total_strides(arch) == list(view.total_strides) == stride_product(arch["strides"])



def test_label_coding_of_a_plan_and_of_probability_metadata() -> None:
    """The three fields label conversion reads, as stored; softmax counts the background channel."""
    regions = plan_view({"label_mode": "sigmoid", "regions_class_order": [1, 2],
                         "outputs": {"whole tumour": [1, 2], "core": 2}}).label_coding
    assert regions == LabelCoding("sigmoid", {"whole tumour": [1, 2], "core": 2}, [1, 2])
    assert regions.num_outputs == 2
    softmax = LabelCoding.from_json({"outputs": {"liver": [1], "tumour": [2]}})
    assert (softmax.label_mode, softmax.regions_class_order, softmax.num_outputs) == ("softmax", None, 3)



def test_entry_fields_and_their_defaults(planned: tuple[dict, Path]) -> None:
    """Every field a stage reads is on Configuration; an entry without the optional keys gets the one default."""
    plans, work = planned
    view = read_plans(work / "plans.json")
    for name, entry in plans["configurations"].items():
        config = view.configuration(name)
        assert list(config.median_shape or []) == entry["median_shape"]
        assert dict(config.resampling) == entry["resampling"] and config.batch_size == entry["batch_size"]
        assert list(config.mirror_axes) == entry["mirror_axes"] and dict(config.memory or {}) == entry["memory"]
        assert config.mirror_swap_axis == entry.get("mirror_swap_axis") and config.mirror_note == entry.get("mirror_note")
    two_d = view.configuration("2d")
    # the patch's spacing leaves out the slice axis (z: the coarsest of the tiny phantom)
    assert len(two_d.patch_spacing) == 2 and two_d.slice_axis is not None
    assert list(two_d.patch_spacing) == [s for a, s in enumerate(two_d.target_spacing) if a != two_d.slice_axis]
    bare = Plans.from_json({"num_channels": 1, "num_outputs": 2, "configurations": {"3d_fullres": {
        "target_spacing": [1, 1, 1], "patch_size": [8, 8, 8], "architecture": plans["configurations"]["3d_fullres"][
            "architecture"]}}}).configuration("3d_fullres")
    assert (bare.batch_size, bare.mirror_axes, bare.keep_spacing_axes, bare.median_shape) == (2, (), (), None)
    assert (bare.tile_weights, bare.accumulation, bare.averages_fold_logits) == ("gaussian", "fp32", False)
    assert bare.batch_dice is None and bare.batch_dice_or_default is True and dict(bare.resampling) == {}
    imported = bare.replace(inference={"tile_weights": "nnunet_gaussian", "accumulation": "fp16",
                                       "fold_average": "logits"}, keep_spacing_axes=[0])
    assert (imported.tile_weights, imported.accumulation, imported.averages_fold_logits) == \
        ("nnunet_gaussian", "fp16", True)
    assert imported.keep_spacing_axes == (0,)



def test_replace_keeps_the_file_order_and_the_original(planned: tuple[dict, Path]) -> None:
    """A changed key keeps its place, a new one goes last, a dropped one goes; JSON values stay lists; the source view
    is untouched (what a model dir's plans.json copy of a fitted entry is written from)."""
    entry = read_plans(planned[1] / "plans.json").configuration("3d_fullres")
    before = entry.as_dict()
    narrower = entry.architecture.replace(features_per_stage=[f // 2 for f in entry.architecture.features_per_stage])
    changed = entry.replace(batch_size=2, patch_size=(8, 8, 8), architecture=narrower, training_fit={"chosen": "x"})
    stored = changed.as_dict()
    assert list(stored) == list(before) + ["training_fit"]
    assert stored["patch_size"] == [8, 8, 8] and isinstance(stored["architecture"], dict)
    assert stored["architecture"]["features_per_stage"] == list(narrower.features_per_stage)
    assert list(stored["architecture"]) == list(before["architecture"])
    assert changed.training_fit == {"chosen": "x"} and entry.training_fit is None
    assert entry.as_dict() == before
    dropped = changed.replace(drop=("training_fit",), mirror_note="why")
    assert "training_fit" not in dropped.as_dict() and list(dropped.as_dict())[-1] == "mirror_note"
    assert json.dumps(with_configuration(Plans.from_json(planned[0]), changed))   # writable as it is
    assert entry.stored(("patch_size", "no_such_key")) == {"patch_size": before["patch_size"]}



def test_views_pickle_into_worker_processes(planned: tuple[dict, Path]) -> None:
    """Preprocessing's spawn pool gets the plan view: it pickles as the stored dict and comes back equal."""
    import pickle

    view = read_plans(planned[1] / "plans.json")
    again = pickle.loads(pickle.dumps(view))
    assert again == view and dict(again.raw) == dict(view.raw) and again.source == view.source
    entry = view.configuration("3d_fullres")
    assert pickle.loads(pickle.dumps(entry)) == entry
    assert pickle.loads(pickle.dumps(entry.architecture)).as_dict() == entry.architecture.as_dict()


def test_digests_are_the_stored_forms_and_survive_a_round_trip(planned: tuple[dict, Path]) -> None:
    """One digest rule for a plan and an entry: canonical JSON of what the file stores, so checkpoints and fit records
    written before keep matching (the formula is pinned here), and a change to the entry changes it."""
    import hashlib

    plans, work = planned
    view = read_plans(work / "plans.json")
    entry = view.configuration("3d_fullres")
    stored = plans["configurations"]["3d_fullres"]
    assert entry.sha256() == hashlib.sha256(
        json.dumps(stored, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    assert view.sha256() == hashlib.sha256(json.dumps(plans, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    assert Plans.from_json(json.loads(json.dumps(plans))).configuration("3d_fullres").sha256() == entry.sha256()
    assert entry.replace(batch_size=entry.batch_size + 1).sha256() != entry.sha256()
