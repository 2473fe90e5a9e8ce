"""The per-case prediction steps (segkit.inference.predictor): probabilities computed in place bit for bit, and
orientation safety: the same physical image stored RAS, LPS, sagittally or as a DICOM series gives the same labels in
physical space, mapped back onto each input's own grid."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from inference_fixtures import tiny_architecture
from orientation_data import DIRECTIONS, LABELS, lateral_case, stored_as

from segkit.cli import main
from segkit.inference.model import load_model
from segkit.inference.predictor import SOFTMAX_CHUNK_VOXELS, InferenceOptions, predict_case, probabilities_in_place
from segkit.io.dicom_write import write_dicom_series
from segkit.io.image import Geometry, read_image, write_image
from segkit.jsonio import write_json
from segkit.preprocessing.orientation import LEGACY_WARNING, orientation_summary, reorientation_for


def lateral_model(work: Path, canonical: str | None = "LPS", seed: int = 3) -> Path:
    """An untrained two-channel model folder for the lateral labels (mirroring never along left/right)."""
    from segkit.networks import build_network

    arch = tiny_architecture(3)
    plans = {"schema_version": 1, "dataset_name": "Lateral", "num_channels": 2, "channel_names": ["A", "B"],
             "labels": LABELS, "label_mode": "softmax", "outputs": {"Left-Blob": [1], "Right-Blob": [2]},
             "regions_class_order": None, "num_outputs": 3,
             "normalization": [{"scheme": "zscore", "use_nonzero_mask": True}] * 2,
             "configurations": {"3d_fullres": {
                 "spatial_dims": 3, "target_spacing": [3.0, 1.0, 1.2], "median_shape": [10, 20, 24],
                 "patch_size": [8, 16, 16], "batch_size": 2, "mirror_axes": [0, 1], "previous_stage": None,
                 "resampling": {"image_order": 3, "label": "onehot_linear", "anisotropy_threshold": 3.0},
                 "architecture": arch}}}
    if canonical is not None:
        plans["canonical_orientation"] = canonical
        plans["training_orientations"] = orientation_summary([DIRECTIONS["RAS"]])
    model_dir = work / "models" / "3d_fullres"
    write_json(model_dir / "plans.json", plans)
    torch.manual_seed(seed)
    network = build_network(arch, 2, 3)
    payload = {"format": "segkit-checkpoint-1", "network_state": network.state_dict(), "architecture": arch,
               "in_channels": 2, "num_outputs": 3, "configuration": "3d_fullres", "plans_sha256": "0" * 64, "epoch": 1}
    (model_dir / "fold_0").mkdir(parents=True)
    torch.save(payload, model_dir / "fold_0" / "checkpoint_final.pt")
    return model_dir


def _canonical_predictions(model_dir: Path) -> dict[str, np.ndarray]:
    """Labels predicted for each storage of the lateral case, each brought to the canonical frame."""
    model = load_model(model_dir, device="cpu")
    images, labels, geometry = lateral_case()
    found = {}
    for code, direction in DIRECTIONS.items():
        stored_images, _, stored_geometry = stored_as(images, labels, geometry, direction)
        prediction = predict_case(model, code, stored_images, stored_geometry, InferenceOptions(tile_batch=2))
        assert prediction.labels.shape == stored_geometry.array_shape
        found[code] = reorientation_for(direction).to_canonical(prediction.labels)
    return found


def test_predictions_agree_in_physical_space_for_every_storage(tmp_path):
    found = _canonical_predictions(lateral_model(tmp_path / "canonical"))
    assert len(np.unique(found["LPS"])) >= 2      # an untrained network still gives a structured map
    for code in ("RAS", "AIL"):
        np.testing.assert_array_equal(found[code], found["LPS"])


def test_a_legacy_model_is_sensitive_to_storage_and_warns(tmp_path, capsys):
    model_dir = lateral_model(tmp_path / "legacy", canonical=None)
    found = _canonical_predictions(model_dir)
    assert not np.array_equal(found["RAS"], found["LPS"])   # what the canonical frame prevents
    assert "no 'canonical_orientation'" in capsys.readouterr().err
    images, labels, geometry = lateral_case()
    for channel in range(2):
        write_image(images[channel], geometry, tmp_path / "in" / f"case_{channel:04d}.nii.gz")
    assert main(["predict", "-i", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "-m", str(model_dir),
                 "--device", "cpu", "--batch"]) == 0
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["canonical_orientation"] is None and report["cases"][0]["warnings"] == [LEGACY_WARNING]


def _write_inputs(folder: Path) -> dict[str, tuple]:
    """The lateral case as RAS and sagittal NIfTI files and as a DICOM study in scanner order."""
    images, labels, geometry = lateral_case()
    inputs = {}
    for code in ("RAS", "AIL"):
        stored_images, _, stored_geometry = stored_as(images, labels, geometry, DIRECTIONS[code])
        for channel in range(2):
            write_image(stored_images[channel], stored_geometry, folder / f"{code}_{channel:04d}.nii.gz")
        inputs[code] = DIRECTIONS[code]
    for channel in range(2):
        write_dicom_series(images[channel], geometry, folder / "dicom" / f"{channel:04d}", f"ch{channel}")
    inputs["dicom"] = DIRECTIONS["LPS"]
    # the same voxels tilted 30 degrees about the patient's z axis: more oblique than any training image
    c, s = np.cos(np.radians(30)), np.sin(np.radians(30))
    tilted = Geometry(geometry.spacing, geometry.origin, (c, -s, 0.0, s, c, 0.0, 0.0, 0.0, 1.0), geometry.size)
    for channel in range(2):
        write_image(images[channel], tilted, folder / f"tilted_{channel:04d}.nii.gz")
    return inputs


def test_batch_prediction_of_nifti_and_dicom_agrees_and_reports_orientation(tmp_path):
    model_dir = lateral_model(tmp_path / "work")
    inputs = _write_inputs(tmp_path / "in")
    out = tmp_path / "out"
    assert main(["predict", "-i", str(tmp_path / "in"), "-o", str(out), "-m", str(model_dir), "--device", "cpu",
                 "--dicom-seg"]) == 0
    canonical = {}
    for case_id, direction in inputs.items():
        label = read_image(out / f"{case_id}.nii.gz")
        assert label.geometry.direction == pytest.approx(direction)
        canonical[case_id] = reorientation_for(direction).to_canonical(label.array)
    np.testing.assert_array_equal(canonical["RAS"], canonical["dicom"])
    np.testing.assert_array_equal(canonical["AIL"], canonical["dicom"])
    report = json.loads((out / "report.json").read_text())
    assert report["canonical_orientation"] == "LPS"
    warnings = {case["case_id"]: case["warnings"] for case in report["cases"]}
    assert all(LEGACY_WARNING not in found for found in warnings.values())
    assert warnings["dicom"] == [] and not any("oblique" in w for w in warnings["RAS"] + warnings["AIL"])
    assert any("30.0 degrees oblique" in w for w in warnings["tilted"])


def test_probabilities_in_place_equal_a_whole_volume_softmax_or_sigmoid_and_overwrite_the_logits():
    torch.manual_seed(0)
    # more voxels than one chunk, and not a multiple of it: the chunked softmax must still equal the whole one
    logits = torch.randn(3, 2, 5, SOFTMAX_CHUNK_VOXELS // 7 + 3)
    expected = torch.softmax(logits, dim=0)
    result = probabilities_in_place(logits.clone(), "softmax")
    assert torch.equal(result, expected)
    region_logits = torch.randn(2, 3, 4, 5)
    expected = torch.sigmoid(region_logits)
    in_place = region_logits.clone()
    assert probabilities_in_place(in_place, "sigmoid") is in_place and torch.equal(in_place, expected)
