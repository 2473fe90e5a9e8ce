"""The seeded phantoms (segkit.phantom): one case's images, nested lesion and oblique grid; datasets in every layout."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk

from segkit.io.dataset import load_dataset, training_cases
from segkit.io.image import read_image
from segkit.phantom import CHANNELS, TISSUE_MEANS, PhantomSpec, generate_dataset, main, make_case
from segkit.preprocessing.orientation import is_rotation
from segkit.verify import verify_dataset

SPEC = PhantomSpec(shape=(10, 14, 12), spacing=(2.5, 1.0, 0.8))


def test_a_case_is_seeded_shaped_oblique_and_holds_a_nested_lesion():
    images, label, geometry = make_case(3, SPEC)
    again, label_again, _ = make_case(3, SPEC)
    other, _, other_geometry = make_case(4, SPEC)
    np.testing.assert_array_equal(images, again)
    np.testing.assert_array_equal(label, label_again)
    assert not np.array_equal(images, other) and other_geometry.direction != geometry.direction
    assert images.shape == (len(CHANNELS), *SPEC.shape) and images.dtype == np.float32 and label.dtype == np.uint8
    assert geometry.size == SPEC.shape[::-1] and geometry.spacing == SPEC.spacing[::-1]
    assert is_rotation(geometry.direction) and not np.allclose(geometry.direction, np.eye(3).ravel())
    assert set(np.unique(label)) <= {0, 1, 2, 3} and {1, 2} <= set(np.unique(label))
    assert np.all(images[:, 0, 0, 0] == 0)                      # outside the head: zero, so cropping matters
    # the channels tell the tissues apart as TISSUE_MEANS says: T1ce is bright on the enhancing rim, T2 on edema
    t1ce, t2 = images[CHANNELS.index("T1ce")], images[CHANNELS.index("T2")]
    if (label == 3).any():
        assert t1ce[label == 3].mean() > t1ce[label == 2].mean()
    assert t2[label == 2].mean() > t2[(label == 0) & (images[0] > 0)].mean()


@pytest.mark.parametrize("shape", [(6, 8, 8), (4, 4, 4), (8, 8, 8)])
def test_a_small_phantom_still_has_a_finite_head_and_lesion_without_overflow(shape):
    with np.errstate(all="raise"):                  # the bias field overflowed exp() on small shapes
        images, label, _ = make_case(0, PhantomSpec(shape=shape))
    assert np.isfinite(images).all() and (images > 0).any() and (label > 0).any()
    head = images[0] > 0
    assert images[:, head].max() < 10 * max(max(means) for means in TISSUE_MEANS.values())   # MR-like, not 1e30


def test_a_shape_too_small_for_a_head_and_lesion_is_refused_in_one_line(tmp_path, capsys):
    with pytest.raises(ValueError, match="phantom shape 3x8x8 is too small: every axis needs at least 4 voxels"):
        PhantomSpec(shape=(3, 8, 8))
    with pytest.raises(SystemExit) as exited:
        main([str(tmp_path / "out"), "--shape", "8", "2", "8"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "phantom shape 8x2x8 is too small" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_no_oblique_degrees_gives_an_axis_aligned_grid():
    _, _, geometry = make_case(0, PhantomSpec(shape=(6, 8, 8), oblique_degrees=0.0))
    np.testing.assert_allclose(geometry.direction, np.eye(3).ravel(), atol=1e-12)


def test_the_nnunet_layout_is_a_valid_raw_dataset_with_test_cases(tmp_path):
    root = generate_dataset(tmp_path / "Phantom", 2, spec=SPEC, num_test=1, seed=5)
    assert verify_dataset(root) == []
    info = load_dataset(root)
    assert [c.case_id for c in training_cases(info)] == ["phantom_001", "phantom_002"]
    assert sorted(p.name for p in (root / "imagesTs").iterdir()) == [f"phantom_003_{c:04d}.nii.gz" for c in range(4)]
    assert not (root / "labelsTs").exists()
    images, label, _ = make_case(5 * 100_003 + 1, SPEC)            # case 2 of seed 5
    np.testing.assert_array_equal(read_image(root / "labelsTr" / "phantom_002.nii.gz").array, label)
    np.testing.assert_allclose(read_image(root / "imagesTr" / "phantom_002_0003.nii.gz").array, images[3], rtol=1e-6)
    labelled = generate_dataset(tmp_path / "Labelled", 1, spec=SPEC, num_test=1, test_labels=True)
    assert [p.name for p in (labelled / "labelsTs").iterdir()] == ["phantom_002.nii.gz"]


def test_the_msd_layout_stacks_the_channels_in_one_4d_file(tmp_path):
    root = generate_dataset(tmp_path / "Task01", 1, "msd", spec=SPEC, num_test=1)
    data = json.loads((root / "dataset.json").read_text())
    assert data["modality"] == {str(i): name for i, name in enumerate(CHANNELS)} and data["numTest"] == 1
    assert data["training"] == [{"image": "./imagesTr/BRATS_001.nii.gz", "label": "./labelsTr/BRATS_001.nii.gz"}]
    image = sitk.ReadImage(str(root / "imagesTr" / "BRATS_001.nii.gz"))
    assert image.GetDimension() == 4 and image.GetSize() == (*SPEC.shape[::-1], len(CHANNELS))


@pytest.mark.parametrize("layout, files, enhancing", [
    ("brats2021", ["BraTS2021_00001_flair", "BraTS2021_00001_seg", "BraTS2021_00001_t1", "BraTS2021_00001_t1ce",
                   "BraTS2021_00001_t2"], 4),
    ("brats2023", ["BraTS-GLI-00001-000-seg", "BraTS-GLI-00001-000-t1c", "BraTS-GLI-00001-000-t1n",
                   "BraTS-GLI-00001-000-t2f", "BraTS-GLI-00001-000-t2w"], 3),
])
def test_brats_layouts_use_their_names_and_enhancing_value(tmp_path, layout, files, enhancing):
    spec = PhantomSpec(shape=(16, 24, 24))                        # big enough for an enhancing rim
    root = generate_dataset(tmp_path / layout, 1, layout, spec=spec, seed=1)
    case = root / files[0].rsplit("_" if layout == "brats2021" else "-", 1)[0]
    assert sorted(p.name for p in case.iterdir()) == [f"{name}.nii.gz" for name in files]
    assert not (root / "dataset.json").exists()
    _, label, _ = make_case(100_003, spec)
    stored = read_image(next(case.glob("*seg.nii.gz"))).array
    np.testing.assert_array_equal(stored, np.where(label == 3, enhancing, label))


def test_an_unknown_layout_is_refused_and_the_command_line_writes_a_dataset(tmp_path):
    with pytest.raises(ValueError, match="unknown layout 'kits'"):
        generate_dataset(tmp_path / "x", 1, "kits")
    main([str(tmp_path / "cli"), "-n", "1", "--shape", "8", "12", "10", "--spacing", "2", "1", "1", "--seed", "2"])
    assert read_image(tmp_path / "cli" / "labelsTr" / "phantom_001.nii.gz").geometry.size == (10, 12, 8)
