"""MSD tasks become the raw layout: 4D images split per channel bit-exactly, dataset.json checked."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
from convert_data import SPEC, assert_fails, convert_cli, sub_geometry

from segkit.io.convert import convert_dataset
from segkit.io.dataset import load_dataset, training_cases
from segkit.io.image import Geometry, write_image
from segkit.verify import verify_dataset


def test_msd_split_keeps_geometry_exactly(sources, tmp_path, capsys):
    dest = tmp_path / "msd_out"
    code, out, _ = convert_cli(capsys, sources["msd"], dest, "--format", "msd")
    assert code == 0 and "2 training and 1 test" in out
    source = sitk.ReadImage(str(sources["msd"] / "imagesTr" / "BRATS_001.nii.gz"))
    assert source.GetDimension() == 4 and source.GetSize()[3] == 4
    source_array = sitk.GetArrayFromImage(source)                  # (channel, z, y, x)
    source_affine = nib.load(sources["msd"] / "imagesTr" / "BRATS_001.nii.gz").affine
    assert not np.allclose(np.asarray(sub_geometry(source).direction), np.eye(3).flatten())
    for channel in range(4):
        path = dest / "imagesTr" / f"BRATS_001_{channel:04d}.nii.gz"
        converted = sitk.ReadImage(str(path))
        assert Geometry.of_sitk(converted) == sub_geometry(source)  # bit-exact, not within tolerance
        assert np.array_equal(nib.load(path).affine, source_affine)
        assert np.array_equal(sitk.GetArrayFromImage(converted), source_array[channel])
    assert (dest / "labelsTr" / "BRATS_001.nii.gz").read_bytes() == \
        (sources["msd"] / "labelsTr" / "BRATS_001.nii.gz").read_bytes()
    assert sorted(p.name for p in (dest / "imagesTs").iterdir()) == [f"BRATS_003_{c:04d}.nii.gz" for c in range(4)]
    dataset = json.loads((dest / "dataset.json").read_text())
    assert dataset["channel_names"] == {"0": "FLAIR", "1": "T1", "2": "T1ce", "3": "T2"}
    assert dataset["labels"] == {"background": 0, "necrosis": 1, "edema": 2, "enhancing": 3}
    assert dataset["numTraining"] == 2 and dataset["file_ending"] == ".nii.gz"
    assert dataset["segkit_source"]["format"] == "msd"
    assert dataset["segkit_source"]["original"]["modality"]["0"] == "FLAIR"
    assert [c.case_id for c in training_cases(load_dataset(dest))] == ["BRATS_001", "BRATS_002"]
    assert verify_dataset(dest) == []


def test_msd_single_channel_task_is_copied(tmp_path):
    source = tmp_path / "Task09_Spleen"
    images, label, geometry = _phantom_case()
    write_image(images[0], geometry, source / "imagesTr" / "spleen_2.nii.gz")
    write_image((label > 0).astype(np.uint8), geometry, source / "labelsTr" / "spleen_2.nii.gz")
    (source / "dataset.json").write_text(json.dumps({
        "name": "Spleen", "modality": {"0": "CT"}, "labels": {"0": "background", "1": "spleen"},
        "training": [{"image": "./imagesTr/spleen_2.nii.gz", "label": "./labelsTr/spleen_2.nii.gz"}], "test": []}))
    dataset = convert_dataset(source, tmp_path / "out")
    out = tmp_path / "out" / "imagesTr" / "spleen_2_0000.nii.gz"
    assert out.read_bytes() == (source / "imagesTr" / "spleen_2.nii.gz").read_bytes()
    assert dataset["channel_names"] == {"0": "CT"} and dataset["labels"] == {"background": 0, "spleen": 1}
    assert verify_dataset(tmp_path / "out") == []


def _phantom_case():
    from segkit.phantom import make_case
    return make_case(7, SPEC)


@pytest.mark.parametrize("damage, words", [
    (lambda d: d.pop("training"), "no 'training'"),
    (lambda d: d.update(labels={"0": "background", "x": "tumour"}), "not an integer"),
    (lambda d: d.update(modality={"0": "FLAIR", "1": "T1", "2": "T1ce"}), "declares 3"),
    (lambda d: d["training"].append({"image": "../elsewhere.nii.gz", "label": "./labelsTr/BRATS_001.nii.gz"}),
     "escapes the dataset folder"),
])
def test_bad_msd_dataset_json(source_copy, tmp_path, capsys, damage, words):
    source = source_copy("msd")
    data = json.loads((source / "dataset.json").read_text())
    damage(data)
    (source / "dataset.json").write_text(json.dumps(data))
    names = "BRATS_001.nii.gz" if "declares" in words else "dataset.json"
    assert_fails(capsys, source, tmp_path / "out", words, names, "--format", "msd")


def test_invalid_json_and_missing_listed_file(source_copy, tmp_path, capsys):
    source = source_copy("msd")
    (source / "imagesTr" / "BRATS_002.nii.gz").unlink()
    assert_fails(capsys, source, tmp_path / "out1", "not found", "BRATS_002.nii.gz")
    (source / "dataset.json").write_text("{not json")
    assert_fails(capsys, source, tmp_path / "out2", "not valid JSON", "dataset.json", "--format", "msd")


def test_msd_split_keeps_stored_type_and_scaling(tmp_path):
    source = tmp_path / "Task05_Scaled"
    (source / "imagesTr").mkdir(parents=True)
    (source / "labelsTr").mkdir()
    stored = np.random.default_rng(0).integers(-500, 500, (10, 12, 8, 2)).astype(np.int16)
    affine = np.array([[0.0, -0.6, 0.0, 12.0], [0.62, 0.0, 0.0, -40.0], [0.0, 0.0, 3.6, 7.5], [0, 0, 0, 1]])
    image = nib.Nifti1Image(stored, affine)
    image.header.set_slope_inter(2.0, 10.0)
    nib.save(image, source / "imagesTr" / "prostate_00.nii.gz")
    nib.save(nib.Nifti1Image(np.zeros((10, 12, 8), np.uint8), affine), source / "labelsTr" / "prostate_00.nii.gz")
    (source / "dataset.json").write_text(json.dumps({
        "modality": {"0": "T2", "1": "ADC"}, "labels": {"0": "background", "1": "PZ", "2": "TZ"},
        "training": [{"image": "./imagesTr/prostate_00.nii.gz", "label": "./labelsTr/prostate_00.nii.gz"}]}))
    convert_dataset(source, tmp_path / "out")
    original = nib.load(source / "imagesTr" / "prostate_00.nii.gz")
    for channel in range(2):
        out = nib.load(tmp_path / "out" / "imagesTr" / f"prostate_00_{channel:04d}.nii.gz")
        assert out.get_data_dtype() == np.int16
        assert np.array_equal(np.asanyarray(out.dataobj), np.asanyarray(original.dataobj)[..., channel])
        assert np.array_equal(out.affine, original.affine)
    assert verify_dataset(tmp_path / "out") == []
