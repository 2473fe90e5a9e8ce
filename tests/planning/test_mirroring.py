"""Mirroring policies: the plan's (every axis but left/right for lateralised labels) and the anatomical one."""

import numpy as np
from plans_helpers import view
from training_data import configuration

from segkit.planning.mirroring import (
    anatomical_mirror_axes,
    inference_swap,
    label_pairs,
    mirror_axes_for,
    output_swap_order,
    training_swap,
    value_swap_table,
)
from segkit.planning.planner import set_mirror_axes

CANONICAL_PLANS = {"canonical_orientation": "LPS", "labels": {"background": 0, "cortex": 1, "thalamus": 2}}


def test_anatomical_policy_mirrors_only_left_right_in_a_canonical_plan():
    canonical = view(CANONICAL_PLANS)
    axes, why, swap = anatomical_mirror_axes(canonical, configuration(mirror_axes=[0, 1, 2]))
    assert axes == [2] and "left/right only" in why and swap is None
    # a 2D configuration slicing along z: its axes are (y, x), so left/right is its axis 1
    assert anatomical_mirror_axes(canonical, configuration(mirror_axes=[0, 1], slice_axis=0, patch_size=[16, 16]))[0] == [1]
    # sagittal slices: left/right is the slice axis, nothing in-plane is a plane of symmetry
    axes, why, _ = anatomical_mirror_axes(canonical, configuration(mirror_axes=[0, 1], slice_axis=2, patch_size=[16, 16]))
    assert axes == [] and "slice axis" in why


def test_anatomical_policy_does_not_mirror_lateralised_labels_without_partners():
    plans = CANONICAL_PLANS | {"labels": {"background": 0, "Left-Blob": 1, "Right-Thing": 2}, "mirror_pairs": []}
    axes, why, swap = anatomical_mirror_axes(view(plans), configuration(mirror_axes=[0, 1]))
    assert axes == [] and swap is None and "Left-Blob" in why and "no left/right partner" in why


def test_anatomical_policy_mirrors_paired_lateralised_labels_with_the_pairs_swapped():
    plans = CANONICAL_PLANS | {"labels": {"background": 0, "Left-Blob": 1, "Right-Blob": 2},
                               "mirror_pairs": [[1, 2]]}
    axes, why, swap = anatomical_mirror_axes(view(plans), configuration(mirror_axes=[0, 1, 2]))
    assert axes == [2] and swap == 2 and "swapped" in why
    # a cascade stage takes the previous stage's one-hot labels as input channels: no swap, no mirror
    axes, why, swap = anatomical_mirror_axes(view(plans), configuration(mirror_axes=[0, 1, 2], previous_stage="3d_lowres"))
    assert axes == [] and swap is None and "cascade" in why


def test_anatomical_policy_keeps_the_planned_axes_of_an_as_stored_plan():
    plans = {"labels": {"background": 0, "cortex": 1}}          # legacy / imported: no canonical frame
    axes, why, swap = anatomical_mirror_axes(view(plans), configuration(mirror_axes=[0, 1, 2]))
    assert axes == [0, 1, 2] and "as stored" in why and swap is None


def test_pairs_are_found_from_the_usual_left_right_spellings():
    labels = {"background": 0, "Left-Hippocampus": 1, "Right-Hippocampus": 2, "caudate_l": 3, "caudate_r": 4,
              "lh.white": 5, "rh.white": 6, "Brain-Stem": 7, "Left-Lateral-Ventricle": 8, "Right-Lateral-Ventricle": 9}
    pairs, unpaired = label_pairs(labels)
    assert pairs == [[1, 2], [3, 4], [5, 6], [8, 9]] and unpaired == []
    pairs, unpaired = label_pairs({"background": 0, "Left-Kidney": 1, "Right-Kidney": 2, "left_adrenal": 3})
    assert pairs == [[1, 2]] and unpaired == ["left_adrenal"]
    # the same structure twice on one side is ambiguous: nothing is paired
    assert label_pairs({"L_a": 1, "left_a": 2, "R_a": 3}) == ([], ["L_a", "left_a", "R_a"])


def test_swap_tables_exchange_the_pairs_only():
    np.testing.assert_array_equal(value_swap_table([[1, 2], [4, 5]], 6), [0, 2, 1, 3, 5, 4, 6])
    outputs = {"Left-Blob": [1], "Right-Blob": [2], "middle": [3]}
    assert output_swap_order(outputs, [[1, 2]], "softmax") == [0, 2, 1, 3]
    assert output_swap_order(outputs, [[1, 2]], "sigmoid") is None
    assert output_swap_order(outputs, [], "softmax") is None
    plans = {"labels": {"background": 0, "Left-Blob": 1, "Right-Blob": 2, "middle": 3}, "outputs": outputs,
             "label_mode": "softmax", "mirror_pairs": [[1, 2]], "ignore_label": 4}
    axis, table = training_swap(view(plans), configuration(mirror_swap_axis=2))
    assert axis == 2 and list(table) == [0, 2, 1, 3, 4]
    assert inference_swap(view(plans), configuration(mirror_swap_axis=2)) == (2, (0, 2, 1, 3))
    assert training_swap(view(plans), configuration()) is None and inference_swap(view(plans), configuration()) is None


LPS = [[1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0]]


def test_the_plan_keeps_left_right_for_paired_labels_and_drops_it_otherwise():
    paired = {"background": 0, "Left-Blob": 1, "Right-Blob": 2}
    axes, note, swap = mirror_axes_for(paired, LPS)
    assert axes == [0, 1, 2] and swap == 2 and "swapped" in note
    entry = set_mirror_axes({"patch_size": [8, 8, 8]}, paired, LPS)
    assert entry["mirror_axes"] == [0, 1, 2] and entry["mirror_swap_axis"] == 2
    # region outputs may hold both sides in one region: the old rule (no left/right mirror)
    entry = set_mirror_axes({"patch_size": [8, 8, 8]}, paired, LPS, label_mode="sigmoid")
    assert entry["mirror_axes"] == [0, 1] and "mirror_swap_axis" not in entry and "region" in entry["mirror_note"]
    entry = set_mirror_axes({"patch_size": [8, 8, 8]}, {"background": 0, "Left-Blob": 1, "Blob": 2}, LPS)
    assert entry["mirror_axes"] == [0, 1] and "no left/right partner" in entry["mirror_note"]


def test_without_pair_swap_restores_the_rule_before_swapping():
    from segkit.planning.mirroring import without_pair_swap
    from segkit.training.recipe import NNUNET, SHORT_CPU

    entry, note = without_pair_swap(configuration(mirror_axes=[0, 1, 2], mirror_swap_axis=2, patch_size=[8, 8, 8]))
    assert entry.mirror_axes == (0, 1) and entry.mirror_swap_axis is None and "swap_pairs=false" in note
    assert "mirror_swap_axis" not in entry.as_dict() and entry.mirror_note == note
    unswapped = configuration(mirror_axes=[0, 1, 2])
    assert without_pair_swap(unswapped) == (unswapped, None)
    # opt-in until the real-data suite says otherwise (docs/benchmarks.md, #27)
    assert not NNUNET.swap_pairs and not SHORT_CPU.swap_pairs
