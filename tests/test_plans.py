"""plans.json's owner module: typed views parse what the planner writes, refuse malformed files."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from segkit.errors import UserError
from segkit.planning.run import plan_and_write
from segkit.plans import Plans, read_plans, read_plans_dict, write_plans


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
