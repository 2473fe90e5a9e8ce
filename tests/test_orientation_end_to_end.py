"""Train on one storage order, predict others: Left-* labels land on the patient's left.

A tiny model is trained (seconds) on the lateral phantom stored RAS, as NIfTI tools write it,
and predicts the same anatomy as a DICOM series in scanner order (ImageOrientationPatient
1\\0\\0\\0\\1\\0, i.e. LPS), as LPS NIfTI and as sagittal NIfTI.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from orientation_data import (
    DIRECTIONS,
    lateral_case,
    patient_left_mm,
    plan_and_preprocess_lateral,
    stored_as,
    train_calibrated,
)

from segkit.cli import main
from segkit.io.dicom_write import write_dicom_series
from segkit.io.image import read_image, write_image
from segkit.preprocessing.orientation import reorientation_for


def test_training_data_is_the_same_whatever_the_storage(tmp_path):
    stored = {code: plan_and_preprocess_lateral(tmp_path / code, [code]) for code in ("RAS", "AIL")}
    plans = {code: json.loads((work / "plans.json").read_text()) for code, (_, work) in stored.items()}
    for key in ("target_spacing", "median_shape", "patch_size", "mirror_axes"):
        assert plans["RAS"]["configurations"]["3d_fullres"][key] == plans["AIL"]["configurations"]["3d_fullres"][key]
    # left/right (x) is mirrored only with the Left-Blob/Right-Blob pair swapped
    assert plans["RAS"]["configurations"]["3d_fullres"]["mirror_axes"] == [0, 1, 2]
    assert plans["RAS"]["configurations"]["3d_fullres"]["mirror_swap_axis"] == 2
    assert plans["RAS"]["mirror_pairs"] == [[1, 2]]
    assert plans["RAS"]["training_orientations"]["codes"] == {"RAS": 4}
    assert plans["AIL"]["training_orientations"]["codes"] == {"AIL": 4}
    fingerprint = json.loads((stored["AIL"][1] / "fingerprint.json").read_text())
    assert fingerprint["cases"][0]["orientation"] == "AIL"
    assert fingerprint["cases"][0]["spacing"] == pytest.approx([3.0, 1.0, 1.2])      # canonical (z, y, x)
    for case in ("case_000", "case_003"):
        for suffix in (".npy", "_seg.npy"):
            arrays = [np.load(work / "preprocessed" / "3d_fullres" / f"{case}{suffix}") for _, work in stored.values()]
            np.testing.assert_array_equal(arrays[0], arrays[1])


@pytest.mark.slow
def test_a_model_trained_on_ras_puts_left_labels_on_the_left_of_a_dicom_series(tmp_path, lateral_model):
    _, work = lateral_model
    images, labels, geometry = lateral_case(seed=11)   # a new patient
    inputs = tmp_path / "in"
    for channel in range(2):
        write_dicom_series(images[channel], geometry, inputs / "scanner" / f"{channel:04d}", f"ch{channel}")
    for code in ("LPS", "AIL"):
        stored_images, _, stored_geometry = stored_as(images, labels, geometry, DIRECTIONS[code])
        for channel in range(2):
            write_image(stored_images[channel], stored_geometry, inputs / f"{code}_{channel:04d}.nii.gz")
    out = tmp_path / "out"
    assert main(["predict", "-i", str(inputs), "-o", str(out), "-m", str(work), "--device", "cpu"]) == 0
    dicom = read_image(out / "scanner.nii.gz")
    truth = labels
    for value in (1, 2):
        predicted = dicom.array == value
        dice = 2 * np.sum(predicted & (truth == value)) / (predicted.sum() + np.sum(truth == value))
        assert dice > 0.6, f"label {value}: Dice {dice:.2f}"
    # Left-Blob (1) lies towards the patient's left of Right-Blob (2) in physical space
    assert patient_left_mm(dicom.array, dicom.geometry, 1) > patient_left_mm(dicom.array, dicom.geometry, 2) + 5
    reference = reorientation_for(dicom.geometry.direction).to_canonical(dicom.array)
    for code in ("LPS", "AIL"):
        other = read_image(out / f"{code}.nii.gz")
        np.testing.assert_array_equal(reorientation_for(other.geometry.direction).to_canonical(other.array), reference)


@pytest.mark.slow
def test_the_left_right_mirror_of_an_image_gets_the_mirrored_labels_with_the_pairs_swapped(tmp_path):
    dataset, work = plan_and_preprocess_lateral(tmp_path, ["LPS"])
    # swap_pairs: left/right mirrored with the pair swapped, in training (light augmentation) and in TTA
    train_calibrated(dataset, work, "light", "--recipe-set", "swap_pairs=true")
    model_plans = json.loads((work / "models" / "3d_fullres" / "plans.json").read_text())
    assert model_plans["configurations"]["3d_fullres"]["mirror_axes"] == [2]
    assert model_plans["configurations"]["3d_fullres"]["mirror_swap_axis"] == 2
    images, labels, geometry = lateral_case(seed=11)          # canonical LPS: array x is left/right
    inputs = tmp_path / "in"
    for channel in range(2):
        write_image(images[channel], geometry, inputs / f"straight_{channel:04d}.nii.gz")
        write_image(np.ascontiguousarray(images[channel][:, :, ::-1]), geometry, inputs / f"mirror_{channel:04d}.nii.gz")
    out = tmp_path / "out"
    assert main(["predict", "-i", str(inputs), "-o", str(out), "-m", str(work), "--device", "cpu"]) == 0
    straight = read_image(out / "straight.nii.gz").array
    mirrored = read_image(out / "mirror.nii.gz").array
    assert (straight == 1).sum() > 50 and (straight == 2).sum() > 50     # a trained model: both blobs found
    expected = np.array([0, 2, 1])[straight[:, :, ::-1]]
    agreement = float(np.mean(mirrored == expected))
    assert agreement >= 0.999, f"mirror of the prediction with the pair swapped agrees on {agreement:.4%} of voxels"
