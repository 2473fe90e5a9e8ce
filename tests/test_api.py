"""`segkit.Predictor`: every input kind gives the CLI's label map voxel for voxel, in the kind it was given."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
from inference_fixtures import make_model_dir, read_array, write_input_case

import segkit
from segkit.cli import main
from segkit.errors import UserError
from segkit.inference.probabilities import load_probabilities

FAST = ["--device", "cpu", "--no-tta"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> dict:
    """One- and two-channel models, an oblique anisotropic input folder, and the CLI's predictions of it."""
    root = tmp_path_factory.mktemp("api")
    one = make_model_dir(root / "one", num_channels=1, folds=("0", "1"))
    two = make_model_dir(root / "two", num_channels=2)
    inputs = root / "in"
    write_input_case(inputs, "case", (11, 23, 19), (2.7, 0.9, 1.2), num_channels=2, seed=3)
    single = root / "single"
    single.mkdir()
    (single / "case_0000.nii.gz").write_bytes((inputs / "case_0000.nii.gz").read_bytes())
    assert main(["predict", "-i", str(single), "-o", str(root / "cli1"), "-m", str(one), "--save-probabilities",
                 *FAST]) == 0
    assert main(["predict", "-i", str(inputs), "-o", str(root / "cli2"), "-m", str(two), *FAST]) == 0
    return {"one": one, "two": two, "inputs": inputs, "cli1": read_array(root / "cli1" / "case.nii.gz"),
            "cli1_probabilities": load_probabilities(root / "cli1" / "case.npz")[0],
            "cli2": read_array(root / "cli2" / "case.nii.gz")}


@pytest.fixture(scope="module")
def one_channel(setup) -> segkit.Predictor:
    """A Predictor of the one-channel model (folds 0 and 1, no TTA, CPU)."""
    return segkit.Predictor(setup["one"], device="cpu", tta=False)


def test_simpleitk_image_in_simpleitk_image_out_with_its_geometry(setup, one_channel):
    image = sitk.ReadImage(str(setup["inputs"] / "case_0000.nii.gz"))
    result = one_channel.predict(image)
    assert isinstance(result, sitk.Image)
    assert (result.GetOrigin(), result.GetSpacing(), result.GetDirection(), result.GetSize()) == \
        (image.GetOrigin(), image.GetSpacing(), image.GetDirection(), image.GetSize())
    np.testing.assert_array_equal(sitk.GetArrayFromImage(result), setup["cli1"])


def test_path_nibabel_and_numpy_inputs_equal_the_cli(setup, one_channel):
    path = setup["inputs"] / "case_0000.nii.gz"
    np.testing.assert_array_equal(sitk.GetArrayFromImage(one_channel.predict(path)), setup["cli1"])
    np.testing.assert_array_equal(sitk.GetArrayFromImage(one_channel.predict(str(path))), setup["cli1"])
    nifti = nib.load(str(path))
    result = one_channel.predict(nifti)
    assert isinstance(result, nib.Nifti1Image) and np.array_equal(result.affine, nifti.affine)
    np.testing.assert_array_equal(np.asarray(result.dataobj).transpose(2, 1, 0), setup["cli1"])
    image = sitk.ReadImage(str(path))
    array = sitk.GetArrayFromImage(image)
    spacing = image.GetSpacing()[::-1]
    labels = one_channel.predict(array[None], spacing=spacing, origin=image.GetOrigin(),
                                 direction=image.GetDirection())
    assert isinstance(labels, np.ndarray)
    np.testing.assert_array_equal(labels, setup["cli1"])
    # #24 item 11: without direction= the array is taken as identity-stored, and the user is told so
    with pytest.warns(UserWarning, match="without direction= is taken as stored in the identity"):
        np.testing.assert_array_equal(one_channel.predict(array, spacing=spacing), setup["cli1"])


def test_list_of_channels_equals_the_cli(setup):
    predictor = segkit.Predictor(setup["two"], device="cpu", tta=False)
    paths = [setup["inputs"] / f"case_{c:04d}.nii.gz" for c in range(2)]
    result = predictor.predict([sitk.ReadImage(str(p)) for p in paths])
    np.testing.assert_array_equal(sitk.GetArrayFromImage(result), setup["cli2"])
    np.testing.assert_array_equal(sitk.GetArrayFromImage(predictor.predict(paths)), setup["cli2"])
    result = predictor.predict([nib.load(str(p)) for p in paths])
    np.testing.assert_array_equal(np.asarray(result.dataobj).transpose(2, 1, 0), setup["cli2"])


def test_probabilities_and_predict_many_stream_in_order(setup, one_channel):
    path = setup["inputs"] / "case_0000.nii.gz"
    labels, probabilities = one_channel.predict(path, return_probabilities=True)
    assert probabilities.dtype == np.float32 and probabilities.shape == (4, *setup["cli1"].shape)
    # the CLI stores the same probabilities as float16
    np.testing.assert_array_equal(probabilities.astype(np.float16).astype(np.float32), setup["cli1_probabilities"])
    image = sitk.ReadImage(str(path))
    flipped = sitk.Flip(image, [True, False, False])
    results = list(one_channel.predict_many([image, flipped, path]))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(results[0]), setup["cli1"])
    np.testing.assert_array_equal(sitk.GetArrayFromImage(results[1]),
                                  sitk.GetArrayFromImage(one_channel.predict(flipped)))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(results[2]), setup["cli1"])


def test_bad_inputs_are_user_errors(setup, one_channel):
    with pytest.raises(UserError, match="spacing"):
        one_channel.predict(np.zeros((8, 8, 8), np.float32))
    with pytest.raises(UserError, match="cannot predict a dict"):
        one_channel.predict({})
    with pytest.raises(UserError, match="channel"):
        one_channel.predict(np.zeros((2, 8, 8, 8), np.float32), spacing=(1, 1, 1))
    with pytest.raises(UserError, match="file not found"):
        one_channel.predict(Path(setup["inputs"]) / "nope.nii.gz")


@pytest.mark.slow
def test_import_segkit_stays_light():
    import subprocess
    import sys

    code = "import sys, segkit; print('torch' in sys.modules, 'SimpleITK' in sys.modules, callable(segkit.evaluate))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1]).stdout.split()
    assert out == ["False", "False", "True"]


def test_evaluate_and_plan_are_the_commands_functions(tiny_dataset, tmp_path):
    import json

    plans = segkit.plan(tiny_dataset, tmp_path / "work")
    assert plans == json.loads((tmp_path / "work" / "plans.json").read_text())
    assert "3d_fullres" in plans["configurations"]
    labels = tiny_dataset / "labelsTr"
    summary = segkit.evaluate(labels, labels)   # labels against themselves: perfect scores
    assert summary["num_cases"] == 4
    assert summary["foreground_mean"]["dice"] == 1.0 and summary["foreground_mean"]["hd95"] == 0.0
