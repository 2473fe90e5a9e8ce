"""The cases of a prediction input (segkit.batch.cases): found in a file, folder, raw dataset or DICOM study, and
loaded as a (C, z, y, x) stack on channel 0's grid; every problem a UserError naming the file."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from batch_data import SPEC_2CH, phantom, write_dicom_case, write_file_case

from segkit.batch.cases import InputSpec, case_series, discover_cases, input_files, input_geometry, load_case
from segkit.batch.provenance import input_digest
from segkit.errors import UserError
from segkit.io.image import Geometry, read_image, write_image


def test_a_folder_mixing_files_and_studies_gives_cases_sorted_by_id(tmp_path):
    write_file_case(tmp_path, "b", seed=1)
    write_dicom_case(tmp_path, "a", seed=2)
    images, _, geometry = phantom(3, channels=1)
    write_image(images[0], geometry, tmp_path / "c.nii.gz")          # no _XXXX suffix: a one-channel case
    (tmp_path / ".b_0000.nii.gz.tmp").write_bytes(b"")                # hidden and unknown files are ignored
    (tmp_path / "notes.txt").write_text("not an image")
    cases = discover_cases(tmp_path)
    assert [(c.case_id, c.kind, c.channels) for c in cases] == [("a", "dicom", ()), ("b", "files", (0, 1)),
                                                                 ("c", "files", (0,))]
    assert cases[1].sources == (tmp_path / "b_0000.nii.gz", tmp_path / "b_0001.nii.gz")
    assert discover_cases(tmp_path / "b_0001.nii.gz")[0].channels == (1,)   # one file given: that file's channel


def test_a_raw_dataset_is_read_from_imagesTs_else_imagesTr_and_a_study_folder_is_one_case(tmp_path):
    dataset = tmp_path / "Dataset001_X"
    (dataset / "imagesTs").mkdir(parents=True)
    (dataset / "dataset.json").write_text(json.dumps({"channel_names": {"0": "T1", "1": "FLAIR"}}))
    write_file_case(dataset / "imagesTr", "train", seed=1)
    assert [c.case_id for c in discover_cases(dataset)] == ["train"]   # imagesTs is empty
    write_file_case(dataset / "imagesTs", "test", seed=2)
    assert [c.case_id for c in discover_cases(dataset)] == ["test"]
    write_dicom_case(tmp_path / "studies", "study", seed=3)
    assert [(c.case_id, c.kind) for c in discover_cases(tmp_path / "studies" / "study")] == [("study", "dicom")]


@pytest.mark.parametrize("damage, words", [
    (lambda f: shutil.copy(f / "b_0000.nii.gz", f / "b_0000.nii"), "two files for channel 0"),
    (lambda f: write_dicom_case(f, "b", seed=4), "both as image files and as DICOM folders"),
    (lambda f: [p.unlink() for p in f.iterdir()], "no input cases"),
])
def test_ambiguous_or_empty_inputs_are_refused(tmp_path, damage, words):
    write_file_case(tmp_path, "b", seed=1)
    damage(tmp_path)
    with pytest.raises(UserError, match=words) as error:
        discover_cases(tmp_path)
    assert error.value.path is not None
    with pytest.raises(UserError, match="input not found"):
        discover_cases(tmp_path / "missing")


def test_a_file_case_loads_its_channels_in_order_with_their_digest(tmp_path):
    geometry = write_file_case(tmp_path, "b", seed=1)
    case, = discover_cases(tmp_path)
    loaded = load_case(case, SPEC_2CH)
    assert loaded.images.dtype == np.float32 and loaded.images.shape == (2, *geometry.size[::-1])
    for channel in range(2):
        np.testing.assert_array_equal(loaded.images[channel], read_image(case.sources[channel]).array)
    assert loaded.geometry == read_image(case.sources[0]).geometry == input_geometry(case, SPEC_2CH)
    assert loaded.geometry.mismatch(geometry) is None   # the phantom's grid, as NIfTI's float32 header keeps it
    assert loaded.input_files == input_files(case, SPEC_2CH) == case.sources
    assert loaded.input_sha256 == input_digest(case.sources) and case_series(case, SPEC_2CH) == []


def test_a_dicom_case_loads_like_its_files_and_lists_its_series_files(tmp_path):
    geometry = write_dicom_case(tmp_path, "s", seed=1)
    case, = discover_cases(tmp_path)
    loaded = load_case(case, SPEC_2CH)
    images, _, _ = phantom(1)
    np.testing.assert_allclose(loaded.images, images, atol=1e-3)
    assert loaded.geometry.mismatch(geometry) is None and input_geometry(case, SPEC_2CH) == loaded.geometry
    series = case_series(case, SPEC_2CH)
    assert [info.files for info in series] == [info.files for info in loaded.dicom_series]
    assert input_files(case, SPEC_2CH) == loaded.input_files and len(loaded.input_files) == 2 * geometry.size[2]


def test_wrong_channel_count_grid_or_dimension_names_the_file(tmp_path):
    write_file_case(tmp_path, "b", seed=1)
    case, = discover_cases(tmp_path)
    with pytest.raises(UserError, match=r"expects 3 channel file\(s\) \(_0000.._0002\), found channels \[0, 1\]"):
        load_case(case, InputSpec(num_channels=3))
    second = read_image(case.sources[1])
    moved = Geometry(second.geometry.spacing, (5.0, 0.0, 0.0), second.geometry.direction, second.geometry.size)
    write_image(second.array, moved, case.sources[1])
    with pytest.raises(UserError, match=r"origin.*\(channel 0 b_0000.nii.gz\)") as error:
        load_case(case, SPEC_2CH)
    assert error.value.path == str(case.sources[1])
    write_image(np.zeros((4, 5), np.float32), Geometry((1.0, 1.0), (0.0, 0.0), (1.0, 0.0, 0.0, 1.0), (5, 4)),
                tmp_path / "flat.nii.gz")
    with pytest.raises(UserError, match="expected a 3D image"):
        load_case(discover_cases(tmp_path / "flat.nii.gz")[0], InputSpec(num_channels=1))
