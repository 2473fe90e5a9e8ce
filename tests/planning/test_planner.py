"""Planner: nnU-Net target-spacing rule, normalisation, topology rules, memory budget."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from segkit.cli import main
from segkit.errors import UserError
from segkit.io.dataset import load_dataset
from segkit.planning.memory import estimate_peak_bytes
from segkit.planning.planner import PlanOptions, plan_dataset
from segkit.plans import Plans, network_in_channels


def _fingerprint(spacing: list[float], shape: list[int], num_cases: int = 10) -> dict:
    return {"cases": [{"case_id": f"c{i}", "spacing": spacing, "shape_after_crop": shape} for i in range(num_cases)],
            "foreground_intensity_statistics": {"0": {"mean": 0.0, "std": 1.0, "percentile_0.5": -1.0, "percentile_99.5": 1.0}},
            "median_relative_size_after_crop": 0.6}


@pytest.fixture()
def one_channel_info(tmp_path):
    (tmp_path / "imagesTr").mkdir()
    (tmp_path / "dataset.json").write_text(json.dumps(
        {"channel_names": {"0": "CT"}, "labels": {"background": 0, "liver": 1, "tumour": 2}, "file_ending": ".nii.gz"}))
    return load_dataset(tmp_path)


def test_plan_fits_budget_and_shrinks_patch(one_channel_info) -> None:
    fingerprint = _fingerprint([1.0, 0.8, 0.8], [200, 300, 300])
    big = plan_dataset(one_channel_info, fingerprint, PlanOptions(network="unet", budget_bytes=8 * 1024 ** 3))
    small = plan_dataset(one_channel_info, fingerprint, PlanOptions(network="unet", budget_bytes=2 * 1024 ** 3))
    for plans, budget in ((big, 8 * 1024 ** 3), (small, 2 * 1024 ** 3)):
        entry = plans["configurations"]["3d_fullres"]
        assert entry["memory"]["predicted_peak_bytes"] <= budget
        assert entry["memory"]["predicted_peak_bytes"] == estimate_peak_bytes(
            entry["architecture"], entry["patch_size"], entry["batch_size"], 1, 3)["total"]
        assert entry["batch_size"] >= 2
        assert all(p <= m for p, m in zip(entry["patch_size"], entry["median_shape"]))
    small_patch = small["configurations"]["3d_fullres"]["patch_size"]
    assert math.prod(small_patch) < math.prod(big["configurations"]["3d_fullres"]["patch_size"])
    assert big["normalization"][0]["scheme"] == "ct"
    assert big["num_outputs"] == 3 and big["label_mode"] == "softmax"
    # the full-resolution patch covers far less than a quarter of a 200x300x300 image: a low-res stage is planned
    lowres = big["configurations"]["3d_lowres"]
    assert all(a > b for a, b in zip(lowres["target_spacing"], big["configurations"]["3d_fullres"]["target_spacing"]))
    assert math.prod(lowres["patch_size"]) >= 0.2 * math.prod(lowres["median_shape"])
    two_d = big["configurations"]["2d"]
    assert two_d["spatial_dims"] == 2 and len(two_d["patch_size"]) == 2 and two_d["slice_axis"] == 0


def test_reversible_plan_spends_spare_memory_on_depth_then_width(one_channel_info) -> None:
    fingerprint = _fingerprint([1.0, 1.0, 1.0], [48, 48, 48])
    fixed = plan_dataset(one_channel_info, fingerprint, PlanOptions(budget_bytes=8 * 1024 ** 3, max_depth_multiplier=1,
                                                                    max_width_multiplier=1.0))
    grown = plan_dataset(one_channel_info, fingerprint, PlanOptions(budget_bytes=8 * 1024 ** 3))
    arch_fixed = fixed["configurations"]["3d_fullres"]["architecture"]
    arch_grown = grown["configurations"]["3d_fullres"]["architecture"]
    assert arch_grown["reversible"] is True
    assert sum(arch_grown["blocks_per_stage"]) == 2 * sum(arch_fixed["blocks_per_stage"])
    assert arch_grown["features_per_stage"][0] > arch_fixed["features_per_stage"][0]


def test_auto_network_is_reversible_for_a_gpu_budget_and_unet_for_this_cpu(tiny_dataset, tmp_path) -> None:
    from segkit.planning.run import plan_and_write, resolve_network

    assert resolve_network("auto", planning_for_cpu=True) == "unet"
    assert resolve_network("auto", planning_for_cpu=False) == "revmbconv"
    assert resolve_network("resenc", planning_for_cpu=True) == "resenc"
    gpu_plans, _, _ = plan_and_write(tiny_dataset, work_dir=tmp_path / "gpu", gpu_memory_gb=4,
                                     configurations=("3d_fullres",), tradeoff=False)
    assert gpu_plans["network"] == "revmbconv"
    assert gpu_plans["configurations"]["3d_fullres"]["architecture"]["family"] == "revmbconv"


def _lateral_info(root, right_name="Caudate-Right"):
    (root / "imagesTr").mkdir(parents=True)
    (root / "dataset.json").write_text(json.dumps(
        {"channel_names": {"0": "T1"}, "labels": {"background": 0, "thalamus_left": 1, right_name: 2, "lateral_vent": 3},
         "file_ending": ".nii.gz"}))
    return load_dataset(root)


def test_paired_lateralised_labels_are_mirrored_along_left_right_with_the_pairs_swapped(tmp_path) -> None:
    info = _lateral_info(tmp_path / "lateral", right_name="Thalamus-Right")
    fingerprint = _fingerprint([2.0, 1.0, 1.0], [60, 80, 80])
    fingerprint["canonical_orientation"] = "LPS"
    plans = plan_dataset(info, fingerprint, PlanOptions(network="unet", configurations=("3d_fullres", "2d")))
    assert plans["mirror_pairs"] == [[1, 2]]
    fullres, two_d = plans["configurations"]["3d_fullres"], plans["configurations"]["2d"]
    assert fullres["mirror_axes"] == [0, 1, 2] and fullres["mirror_swap_axis"] == 2 and "swapped" in fullres["mirror_note"]
    assert two_d["mirror_axes"] == [0, 1] and two_d["mirror_swap_axis"] == 1     # its axes are array axes (1, 2)


def test_lateralised_labels_without_partners_are_not_mirrored_along_left_right(tmp_path, one_channel_info) -> None:
    from segkit.planning.mirroring import lateralised_labels

    assert lateralised_labels({"hippo_l": 1, "R_caudate": 2, "lh.white": 3, "lateral": 4, "rhombus": 5, "liver": 6}) == \
        ["hippo_l", "R_caudate", "lh.white"]
    info = _lateral_info(tmp_path / "lateral")
    fingerprint = _fingerprint([2.0, 1.0, 1.0], [60, 80, 80])
    options = PlanOptions(network="unet", configurations=("3d_fullres", "2d"))
    # identity direction: ITK index axis 0 (= array axis 2) is the patient's x (left/right)
    plans = plan_dataset(info, fingerprint, options)
    assert plans["configurations"]["3d_fullres"]["mirror_axes"] == [0, 1] and plans["mirror_pairs"] == []
    assert "left/right" in plans["configurations"]["3d_fullres"]["mirror_note"]
    assert "mirror_swap_axis" not in plans["configurations"]["3d_fullres"]
    two_d = plans["configurations"]["2d"]               # slice axis 0: its axes are array axes (1, 2)
    assert two_d["slice_axis"] == 0 and two_d["mirror_axes"] == [0] and "mirror_note" in two_d
    # index axis 2 along x (row-major direction, column 2 = (1, 0, 0)): array axis 0 is left/right
    permuted = [0.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 0.0]
    for case in fingerprint["cases"]:
        case["direction"] = permuted
    plans = plan_dataset(info, fingerprint, options)
    assert plans["configurations"]["3d_fullres"]["mirror_axes"] == [1, 2]
    assert plans["configurations"]["2d"]["mirror_axes"] == [0, 1] and "mirror_note" not in plans["configurations"]["2d"]
    assert "canonical_orientation" not in plans          # a fingerprint without it gives a legacy plan
    # canonical fingerprints: every array is LPS, so left/right is array axis 2 whatever the storage
    fingerprint["canonical_orientation"] = "LPS"
    plans = plan_dataset(info, fingerprint, options)
    assert plans["canonical_orientation"] == "LPS" and plans["training_orientations"]["codes"] == {"SPL": 10}
    # the range of residual rotation the training images covered, and the limit beyond which prediction resamples
    assert plans["training_orientations"]["min_oblique_degrees"] == plans["training_orientations"][
        "max_oblique_degrees"] == 0.0
    assert plans["oblique_inputs"] == {"resample_above_degrees": 5.0, "margin_degrees": 5.0}
    from segkit.planning.summary import plans_summary
    assert "an input beyond 5 is resampled onto the axis-aligned grid" in plans_summary(Plans.from_json(plans))
    assert plans["configurations"]["3d_fullres"]["mirror_axes"] == [0, 1]
    # labels without a side keep every axis
    plain = plan_dataset(one_channel_info, fingerprint, options)["configurations"]["3d_fullres"]
    assert plain["mirror_axes"] == [0, 1, 2] and "mirror_note" not in plain


def test_fingerprint_records_each_cases_direction(tiny_dataset, tmp_path) -> None:
    from segkit.io.image import read_image

    work = tmp_path / "work"
    assert main(["plan", str(tiny_dataset), "--work-dir", str(work), "--network", "unet",
                 "--configurations", "3d_fullres"]) == 0
    fingerprint = json.loads((work / "fingerprint.json").read_text())
    first = fingerprint["cases"][0]
    image = read_image(sorted((tiny_dataset / "imagesTr").glob(f"{first['case_id']}_0000*"))[0])
    assert first["direction"] == pytest.approx(list(image.geometry.direction))
    assert not np.allclose(first["direction"], np.eye(3).ravel())   # the phantom is oblique
    plans = json.loads((work / "plans.json").read_text())
    worst = max(case["oblique_degrees"] for case in fingerprint["cases"])
    assert plans["training_orientations"]["max_oblique_degrees"] == pytest.approx(worst, abs=1e-3) and worst > 1
    assert plans["oblique_inputs"]["resample_above_degrees"] == pytest.approx(worst + 5.0, abs=1e-3)


def test_lowres_brings_the_cascade_priced_with_its_extra_input_channels(one_channel_info, tmp_path) -> None:
    """3d_cascade_fullres: fullres geometry, previous_stage 3d_lowres, memory counted with 1 + 2 input channels."""
    budget = 2 * 1024 ** 3
    plans = plan_dataset(one_channel_info, _fingerprint([1.0, 0.8, 0.8], [200, 300, 300]),
                         PlanOptions(network="unet", budget_bytes=budget))
    fullres, cascade = plans["configurations"]["3d_fullres"], plans["configurations"]["3d_cascade_fullres"]
    assert cascade["previous_stage"] == "3d_lowres" and fullres["previous_stage"] is None
    assert cascade["target_spacing"] == fullres["target_spacing"] and cascade["median_shape"] == fullres["median_shape"]
    view = Plans.from_json(plans)
    assert view.configuration("3d_cascade_fullres").previous_stage == "3d_lowres"
    assert view.in_channels("3d_cascade_fullres") == 3 and view.in_channels("3d_fullres") == 1
    assert network_in_channels(view, "3d_cascade_fullres") == 1 + len(plans["outputs"])
    predicted = cascade["memory"]["predicted_peak_bytes"]
    assert predicted == estimate_peak_bytes(cascade["architecture"], cascade["patch_size"], cascade["batch_size"],
                                            3, 3)["total"]
    # the same network priced without the two one-hot channels costs less: they are counted
    assert predicted > estimate_peak_bytes(cascade["architecture"], cascade["patch_size"], cascade["batch_size"],
                                           1, 3)["total"]
    assert predicted <= budget
    # no lowres stage (the patch covers the image): no cascade either
    small = plan_dataset(one_channel_info, _fingerprint([1.0, 1.0, 1.0], [48, 48, 48]),
                         PlanOptions(network="unet", budget_bytes=budget))
    assert "3d_lowres" not in small["configurations"] and "3d_cascade_fullres" not in small["configurations"]
    broken = json.loads(json.dumps(plans))
    del broken["configurations"]["3d_lowres"]
    with pytest.raises(UserError, match="previous_stage '3d_lowres'"):
        Plans.from_json(broken, tmp_path / "plans.json")


def test_plans_carry_each_labels_snomed_coding_from_dataset_json_or_its_name(tmp_path, one_channel_info) -> None:
    fingerprint = _fingerprint([2.0, 1.0, 1.0], [60, 80, 80])
    options = PlanOptions(network="unet", configurations=("3d_fullres",))
    coding = plan_dataset(one_channel_info, fingerprint, options)["segment_coding"]
    assert list(coding) == ["liver", "tumour"]
    assert coding["liver"]["type"]["meaning"] == "Liver" and coding["tumour"]["type"]["meaning"] == "Neoplasm"
    data = json.loads((one_channel_info.root / "dataset.json").read_text())
    data["label_coding"] = {"tumour": {"type": "Metastasis", "region": "Liver"}}
    (one_channel_info.root / "dataset.json").write_text(json.dumps(data))
    coding = plan_dataset(load_dataset(one_channel_info.root), fingerprint, options)["segment_coding"]
    assert coding["tumour"]["type"]["meaning"] == "Metastasis" and coding["tumour"]["source"] == "dataset.json"
    data["label_coding"] = {"tumour": {"type": "Tumourish"}}
    (one_channel_info.root / "dataset.json").write_text(json.dumps(data))
    with pytest.raises(UserError, match="label_coding"):
        plan_dataset(load_dataset(one_channel_info.root), fingerprint, options)
