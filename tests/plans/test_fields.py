"""segkit.plans.fields: each accessor returns the stored value, or its one default for a plan made before the key."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from segkit.errors import UserError
from segkit.plans import (
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
    with_configuration,
)


def bare_plans(**fields) -> Plans:
    """A hand-made plan with only the required keys (and `fields`)."""
    return Plans.from_json({"num_channels": 1, "num_outputs": 2, **fields})



def test_configuration_of_is_the_one_lookup(planned: tuple[dict, Path]) -> None:
    plans, work = planned
    path = work / "plans.json"
    view = read_plans(path)
    assert configuration_of(view, "3d_fullres").as_dict() == plans["configurations"]["3d_fullres"]
    known = ", ".join(sorted(plans["configurations"]))
    with pytest.raises(UserError, match=rf"unknown configuration '3d_hugeres' \(plans.json has: {known}\)") as err:
        configuration_of(view, "3d_hugeres")
    assert err.value.path == str(path)



def test_output_label_values_in_head_order() -> None:
    plans = bare_plans(label_mode="sigmoid", regions_class_order=[1, 2, 3],
                       outputs={"whole tumour": [1, 2, 3], "tumour core": [2, 3], "enhancing": 3})
    assert output_label_values(plans) == {"whole tumour": [1, 2, 3], "tumour core": [2, 3], "enhancing": [3]}
    assert list(output_label_values(plans)) == ["whole tumour", "tumour core", "enhancing"]
    assert previous_stage_classes(plans) == [[1, 2, 3], [2, 3], [3]]
    assert output_label_values(bare_plans()) == {}



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
