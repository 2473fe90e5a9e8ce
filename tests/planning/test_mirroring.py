"""Mirroring policies: the plan's (every axis but left/right for lateralised labels) and the anatomical one."""

from segkit.planning.mirroring import anatomical_mirror_axes

CANONICAL_PLANS = {"canonical_orientation": "LPS", "labels": {"background": 0, "cortex": 1, "thalamus": 2}}


def test_anatomical_policy_mirrors_only_left_right_in_a_canonical_plan():
    axes, why = anatomical_mirror_axes(CANONICAL_PLANS, {"mirror_axes": [0, 1, 2]})
    assert axes == [2] and "left/right only" in why
    # a 2D configuration slicing along z: its axes are (y, x), so left/right is its axis 1
    assert anatomical_mirror_axes(CANONICAL_PLANS, {"mirror_axes": [0, 1], "slice_axis": 0})[0] == [1]
    # sagittal slices: left/right is the slice axis, nothing in-plane is a plane of symmetry
    axes, why = anatomical_mirror_axes(CANONICAL_PLANS, {"mirror_axes": [0, 1], "slice_axis": 2})
    assert axes == [] and "slice axis" in why


def test_anatomical_policy_does_not_mirror_lateralised_labels():
    plans = CANONICAL_PLANS | {"labels": {"background": 0, "Left-Blob": 1, "Right-Blob": 2}}
    axes, why = anatomical_mirror_axes(plans, {"mirror_axes": [0, 1]})
    assert axes == [] and "Left-Blob" in why


def test_anatomical_policy_keeps_the_planned_axes_of_an_as_stored_plan():
    plans = {"labels": {"background": 0, "cortex": 1}}          # legacy / imported: no canonical frame
    axes, why = anatomical_mirror_axes(plans, {"mirror_axes": [0, 1, 2]})
    assert axes == [0, 1, 2] and "as stored" in why
