"""The terminal summary of plans (segkit.planning.summary): sizes, the aligned table, every configuration's rows."""

from __future__ import annotations

import copy

import pytest
from planning_data import one_channel_dataset, synthetic_fingerprint

from segkit.planning.planner import PlanOptions, plan_dataset
from segkit.planning.summary import configuration_summary, format_bytes, format_table, plans_summary
from segkit.plans import Configuration, Plans


@pytest.fixture(scope="module")
def plans(tmp_path_factory) -> dict:
    """Plans of a one-channel CT dataset (labels a, b) with 2.5 x 0.8 x 0.8 mm cases, LPS frame, a 2 GiB budget."""
    info = one_channel_dataset(tmp_path_factory.mktemp("summary"), "CT")
    fingerprint = {**synthetic_fingerprint([60, 160, 160], [2.5, 0.8, 0.8]), "canonical_orientation": "LPS"}
    return plan_dataset(info, fingerprint, PlanOptions(network="unet", budget_bytes=2 * 1024 ** 3))


@pytest.mark.parametrize("num_bytes, text", [(2 * 1024 ** 3, "2.00 GiB"), (1536 * 1024 ** 2, "1.50 GiB"),
                                              (512 * 1024 ** 2, "512.0 MiB"), (0, "0.0 MiB")])
def test_sizes_are_gib_from_one_gib_and_mib_below(num_bytes, text):
    assert format_bytes(num_bytes) == text


def test_the_table_aligns_the_values_after_the_longest_key():
    lines = format_table([("a", "1"), ("longer key", "2")]).splitlines()
    assert lines == ["  a           1", "  longer key  2"]


def test_every_configuration_gets_its_table_after_the_dataset_header(plans):
    text = plans_summary(Plans.from_json(plans))
    header, *sections = text.split("\n\n")
    assert header.splitlines()[0] == \
        f"dataset {plans['dataset_name']}: 1 channel(s), {len(plans['outputs'])} classes, budget 2.00 GiB (cpu)"
    assert "orientation: every image reoriented to LPS" in header
    assert [section.splitlines()[0] for section in sections] == list(plans["configurations"])
    for name, entry in plans["configurations"].items():
        summary = configuration_summary(Configuration.from_json(name, entry))
        rows = dict(line.strip().split("  ", 1) for line in summary.splitlines()[1:])
        assert rows["patch size"].strip().startswith(" x ".join(f"{v:g}" for v in entry["patch_size"]))
        assert rows["batch size"].strip() == str(entry["batch_size"])
        assert rows["features"].strip() == ", ".join(map(str, entry["architecture"]["features_per_stage"]))
        assert f"{len(entry['architecture']['strides'])} stages" in rows["network"]


def test_a_plan_that_does_not_fit_says_so_and_a_cascade_stage_names_its_source(plans):
    name, entry = next(iter(plans["configurations"].items()))
    assert "DOES NOT FIT" not in configuration_summary(Configuration.from_json(name, entry))
    squeezed = copy.deepcopy(entry)
    squeezed["memory"]["fits_budget"] = False
    squeezed["previous_stage"] = "3d_lowres"
    lines = configuration_summary(Configuration.from_json(name, squeezed)).splitlines()
    assert lines[1].split()[0] == "cascade" and "refines 3d_lowres's segmentation" in lines[1]
    assert lines[-1].endswith("(DOES NOT FIT: smallest patch used)")


def test_a_legacy_plan_and_a_sparse_one_are_described(plans):
    legacy = {k: v for k, v in plans.items() if k != "canonical_orientation"}
    assert "orientation: arrays fed as stored (legacy plan without canonical_orientation)" in plans_summary(Plans.from_json(legacy))
    sparse = copy.deepcopy(plans)
    sparse["ignore_label"] = 3
    assert "sparse annotation: label 3 = ignore" in plans_summary(Plans.from_json(sparse))
