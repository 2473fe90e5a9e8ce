"""plans.json's owner module: typed views parse what the planner writes, refuse malformed files."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from segkit.errors import UserError
from segkit.planning.run import plan_and_write
from segkit.plans import (
    Plans,
    configuration_entry,
    output_label_values,
    previous_stage_classes,
    read_plans,
    read_plans_dict,
    read_plans_json,
    stride_product,
    total_strides,
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
        read_plans_dict(path)
    assert message in err.value.message and err.value.path == str(path)
    with pytest.raises(UserError):
        write_plans(tmp_path / "out" / "plans.json", plans)
    assert not (tmp_path / "out" / "plans.json").exists()


def test_unknown_configuration_lists_the_known(planned: tuple[dict, Path]) -> None:
    view = read_plans(planned[1] / "plans.json")
    with pytest.raises(UserError, match="3d_fullres"):
        view.configuration("3d_cascade")


def test_configuration_entry_is_the_one_lookup(planned: tuple[dict, Path]) -> None:
    plans, work = planned
    path = work / "plans.json"
    assert configuration_entry(plans, "3d_fullres", path) is plans["configurations"]["3d_fullres"]
    known = ", ".join(sorted(plans["configurations"]))
    with pytest.raises(UserError, match=rf"unknown configuration '3d_hugeres' \(plans.json has: {known}\)") as err:
        configuration_entry(plans, "3d_hugeres", path)
    assert err.value.path == str(path)
    with pytest.raises(UserError, match="no 'configurations'"):
        configuration_entry({"num_channels": 1}, "3d_fullres", path)


def test_output_label_values_in_head_order() -> None:
    plans = {"outputs": {"whole tumour": [1, 2, 3], "tumour core": [2, 3], "enhancing": 3}}
    assert output_label_values(plans) == {"whole tumour": [1, 2, 3], "tumour core": [2, 3], "enhancing": [3]}
    assert list(output_label_values(plans)) == ["whole tumour", "tumour core", "enhancing"]
    assert previous_stage_classes(plans) == [[1, 2, 3], [2, 3], [3]]
    assert output_label_values({}) == {}


def test_stride_product_is_defined_once(planned: tuple[dict, Path]) -> None:
    plans, work = planned
    arch = plans["configurations"]["3d_fullres"]["architecture"]
    assert stride_product([[1, 1, 1], [1, 2, 2], [2, 2, 2]]) == [2, 4, 4]
    view = read_plans(work / "plans.json").configuration("3d_fullres").architecture
    assert total_strides(arch) == list(view.total_strides) == stride_product(arch["strides"])


def test_raw_reader_returns_the_file_as_stored(tmp_path: Path) -> None:
    path = tmp_path / "plans.json"
    path.write_text(json.dumps({"configurations": {}, "note": "no num_channels: read_plans would refuse"}))
    assert read_plans_json(path)["note"].startswith("no num_channels")
    path.write_text("{truncated")
    with pytest.raises(UserError) as err:
        read_plans_json(path, "plans file")
    assert err.value.path == str(path)
