"""plans.json's owner module: typed views parse what the planner writes, refuse malformed files."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from segkit.errors import UserError
from segkit.planning.run import plan_and_write
from segkit.plans import (
    LabelCoding,
    Plans,
    canonical_orientation_of,
    channel_names_of,
    configuration_of,
    configurations_of,
    dataset_name_of,
    imported_from_of,
    labels_of,
    like_of,
    memory_model_of,
    mirror_pairs_of,
    normalization_of,
    num_channels_of,
    num_outputs_of,
    output_label_values,
    outputs_of,
    planned_budget_of,
    preprocessing_fields,
    previous_stage_classes,
    read_plans,
    regions_class_order_of,
    stride_product,
    total_strides,
    with_configuration,
    write_plans,
)


@pytest.fixture(scope="module")
def planned(tiny_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    """The tiny phantom planned with every configuration."""
    work = tmp_path_factory.mktemp("plans_work")
    plans, work, _ = plan_and_write(tiny_dataset, work, tradeoff=False)
    return plans, work


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


@pytest.mark.parametrize("mutate, message", [
    (lambda p: p.update(label_mode="softmaxx"), "label_mode"),
    (lambda p: p.update(schema_version=99), "schema_version"),
    (lambda p: p["configurations"]["3d_fullres"].update(target_spacing=[1, 0, 1]), "target_spacing"),
    (lambda p: p["configurations"]["3d_fullres"].update(patch_size=[32, 32]), "patch_size"),
    (lambda p: p["configurations"]["3d_fullres"]["architecture"].pop("strides"), "strides"),
    (lambda p: p.pop("num_outputs"), "num_outputs"),
])
def test_malformed_plans_name_the_file(planned: tuple[dict, Path], tmp_path: Path, mutate, message: str) -> None:
    plans = copy.deepcopy(planned[0])
    mutate(plans)
    path = tmp_path / "plans.json"
    path.write_text(json.dumps(plans))
    with pytest.raises(UserError) as err:
        read_plans(path)
    assert message in err.value.message and err.value.path == str(path)
    with pytest.raises(UserError):
        write_plans(tmp_path / "out" / "plans.json", plans)
    assert not (tmp_path / "out" / "plans.json").exists()


def test_unknown_configuration_lists_the_known(planned: tuple[dict, Path]) -> None:
    view = read_plans(planned[1] / "plans.json")
    with pytest.raises(UserError, match="3d_fullres"):
        view.configuration("3d_cascade")


def test_configuration_of_is_the_one_lookup(planned: tuple[dict, Path]) -> None:
    plans, work = planned
    path = work / "plans.json"
    view = read_plans(path)
    assert configuration_of(view, "3d_fullres").as_dict() == plans["configurations"]["3d_fullres"]
    known = ", ".join(sorted(plans["configurations"]))
    with pytest.raises(UserError, match=rf"unknown configuration '3d_hugeres' \(plans.json has: {known}\)") as err:
        configuration_of(view, "3d_hugeres")
    assert err.value.path == str(path)


def bare_plans(**fields) -> Plans:
    """A hand-made plan with only the required keys (and `fields`)."""
    return Plans.from_json({"num_channels": 1, "num_outputs": 2, **fields})


def test_output_label_values_in_head_order() -> None:
    plans = bare_plans(label_mode="sigmoid", regions_class_order=[1, 2, 3],
                       outputs={"whole tumour": [1, 2, 3], "tumour core": [2, 3], "enhancing": 3})
    assert output_label_values(plans) == {"whole tumour": [1, 2, 3], "tumour core": [2, 3], "enhancing": [3]}
    assert list(output_label_values(plans)) == ["whole tumour", "tumour core", "enhancing"]
    assert previous_stage_classes(plans) == [[1, 2, 3], [2, 3], [3]]
    assert output_label_values(bare_plans()) == {}


def test_label_coding_of_a_plan_and_of_probability_metadata() -> None:
    """The three fields label conversion reads, as stored; softmax counts the background channel."""
    regions = bare_plans(label_mode="sigmoid", regions_class_order=[1, 2],
                         outputs={"whole tumour": [1, 2], "core": 2}).label_coding
    assert regions == LabelCoding("sigmoid", {"whole tumour": [1, 2], "core": 2}, [1, 2])
    assert regions.num_outputs == 2
    softmax = LabelCoding.from_json({"outputs": {"liver": [1], "tumour": [2]}})
    assert (softmax.label_mode, softmax.regions_class_order, softmax.num_outputs) == ("softmax", None, 3)


def test_stride_product_is_defined_once(planned: tuple[dict, Path]) -> None:
    plans, work = planned
    arch = plans["configurations"]["3d_fullres"]["architecture"]
    assert stride_product([[1, 1, 1], [1, 2, 2], [2, 2, 2]]) == [2, 4, 4]
    view = read_plans(work / "plans.json").configuration("3d_fullres").architecture
    assert total_strides(arch) == list(view.total_strides) == stride_product(arch["strides"])


def test_reader_names_the_file_or_the_source(tmp_path: Path) -> None:
    """A truncated file, one without a required key, one without what the caller needs: each names the file."""
    path = tmp_path / "plans.json"
    path.write_text("{truncated")
    with pytest.raises(UserError, match="plans file is not valid JSON") as err:
        read_plans(path, "plans file")
    assert err.value.path == str(path)
    path.write_text(json.dumps({"configurations": {}, "note": "no num_channels"}))
    with pytest.raises(UserError, match="lacks 'num_channels'"):
        read_plans(path)
    path.write_text(json.dumps({"num_channels": 1, "num_outputs": 2}))
    assert read_plans(path).configurations == {}
    with pytest.raises(UserError, match=r"not a segkit plans file \(needs configurations, channel_names\)") as err:
        read_plans(path, needs=("configurations", "channel_names"), source=tmp_path)
    assert err.value.path == str(tmp_path)


def test_accessors_read_the_planned_file(planned: tuple[dict, Path]) -> None:
    """Each accessor returns the planner's value as stored (what the stages read instead of plans["key"])."""
    plans, work = planned
    stored = json.loads((work / "plans.json").read_text())
    view = read_plans(work / "plans.json")
    assert num_channels_of(view) == 4 and num_outputs_of(view) == stored["num_outputs"]
    assert labels_of(view) == stored["labels"] and outputs_of(view) == stored["outputs"]
    assert channel_names_of(view) == stored["channel_names"]
    assert normalization_of(view) == stored["normalization"]
    assert regions_class_order_of(view) == stored["regions_class_order"]
    assert dataset_name_of(view) == stored["dataset_name"]
    assert canonical_orientation_of(view) == stored["canonical_orientation"]
    assert list(configurations_of(view)) == list(stored["configurations"])
    assert planned_budget_of(view) == (stored["gpu_memory_bytes"], stored["device"])
    assert memory_model_of(view) == stored["memory_model"]
    assert mirror_pairs_of(view) == stored["mirror_pairs"]
    assert like_of(view) == {} and imported_from_of(view) == {}


def test_accessor_defaults_for_plans_without_optional_keys() -> None:
    """A plan made before a key: None / {}, never a KeyError."""
    bare = bare_plans()
    assert channel_names_of(bare) is None and mirror_pairs_of(bare) is None
    assert canonical_orientation_of(bare) is None and regions_class_order_of(bare) is None
    assert labels_of(bare) == {} and outputs_of(bare) == {} and configurations_of(bare) == {}
    assert num_channels_of(bare) == 1 and memory_model_of(bare) is None and dataset_name_of(bare) is None


def test_preprocessing_fields_keep_older_plans_hash(planned: tuple[dict, Path]) -> None:
    """Optional keys enter the preprocessing hash's fields only when the plan has them."""
    plans, _ = planned
    fields = preprocessing_fields(Plans.from_json(plans), "3d_fullres")
    assert fields["target_spacing"] == plans["configurations"]["3d_fullres"]["target_spacing"]
    assert fields["canonical_orientation"] == plans["canonical_orientation"]
    legacy = {k: v for k, v in plans.items() if k not in ("canonical_orientation", "ignore_label")}
    assert set(fields) - set(preprocessing_fields(Plans.from_json(legacy), "3d_fullres")) == {"canonical_orientation"}
    sparse = {**plans, "ignore_label": 4}
    assert preprocessing_fields(Plans.from_json(sparse), "3d_fullres")["ignore_label"] == 4


def test_with_configuration_copies(planned: tuple[dict, Path]) -> None:
    """A model folder's plans: the trained entry replaces the planned one; the original is untouched."""
    plans, _ = planned
    before = copy.deepcopy(plans)
    view = Plans.from_json(plans)
    trained = view.configuration("3d_fullres").replace(batch_size=1)
    copied = with_configuration(view, trained)
    assert copied["configurations"]["3d_fullres"]["batch_size"] == 1
    assert plans == before and copied["configurations"]["2d"] == plans["configurations"]["2d"]


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
