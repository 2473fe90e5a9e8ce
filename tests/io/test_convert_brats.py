"""BraTS 2021 / 2023+ folders become the raw layout: channels renamed, labels remapped to regions."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from convert_data import BRATS, assert_fails, convert_cli, paint

from segkit.io.convert import convert_dataset, detect_format
from segkit.io.dataset import load_dataset
from segkit.io.image import read_image, write_image
from segkit.verify import verify_dataset


@pytest.mark.parametrize("layout", ["brats2021", "brats2023"])
def test_brats_round_trip(sources, tmp_path, capsys, layout):
    case, sep, suffixes, et_value = BRATS[layout]
    dest = tmp_path / f"{layout}_out"
    code, _, _ = convert_cli(capsys, sources[layout], dest, "-j", "2")   # auto detection, two workers
    assert code == 0
    for channel, suffix in enumerate(suffixes):
        original = sources[layout] / case / f"{case}{sep}{suffix}.nii.gz"
        converted = dest / "imagesTr" / f"{case}_{channel:04d}.nii.gz"
        assert converted.read_bytes() == original.read_bytes()
    original_seg = read_image(sources[layout] / case / f"{case}{sep}seg.nii.gz")
    stored = read_image(dest / "labelsTr" / f"{case}.nii.gz")
    assert stored.geometry == original_seg.geometry
    assert et_value in np.unique(original_seg.array)
    assert sorted(np.unique(stored.array)) == [0, 1, 2, 3]
    dataset = json.loads((dest / "dataset.json").read_text())
    source = dataset["segkit_source"]
    back = np.zeros_like(stored.array)
    for value, original in source["label_map"].items():
        back[stored.array == int(value)] = original
    assert np.array_equal(back, original_seg.array)
    assert np.array_equal(paint(stored.array, dataset["labels"], dataset["regions_class_order"]), stored.array)
    assert dataset["channel_names"] == {"0": "FLAIR", "1": "T1", "2": "T1ce", "3": "T2"}
    assert source["format"] == layout and source["channel_suffixes"] == list(suffixes)
    assert source["case_pattern"].format(case=case, suffix="seg") == f"{case}/{case}{sep}seg.nii.gz"
    assert dataset["numTraining"] == 2 and len(list((dest / "imagesTs").iterdir())) == 4
    info = load_dataset(dest)
    assert info.region_based and info.regions_class_order == [2, 1, 3]
    assert verify_dataset(dest) == []


def test_regions_class_order_reconstructs_every_tissue():
    labels = np.array([0, 1, 2, 3, 3, 2, 1, 0])
    from segkit.io.convert_brats import REGION_LABELS, REGIONS_CLASS_ORDER
    assert np.array_equal(paint(labels, REGION_LABELS, REGIONS_CLASS_ORDER), labels)
    assert not np.array_equal(paint(labels, REGION_LABELS, [1, 2, 3]), labels)


def test_other_brats2023_prefixes(source_copy, tmp_path):
    source = source_copy("brats2023")
    for folder in list(source.iterdir()):
        renamed = source / folder.name.replace("GLI", "MEN")
        folder.rename(renamed)
        for path in renamed.iterdir():
            path.rename(renamed / path.name.replace("GLI", "MEN"))
    assert detect_format(source) == "brats2023"
    convert_dataset(source, tmp_path / "out")
    assert (tmp_path / "out" / "labelsTr" / "BraTS-MEN-00001-000.nii.gz").is_file()


def test_missing_channel_file(source_copy, tmp_path, capsys):
    source = source_copy("brats2021")
    (source / "BraTS2021_00002" / "BraTS2021_00002_t1ce.nii.gz").unlink()
    assert_fails(capsys, source, tmp_path / "out", "missing channel file", "BraTS2021_00002_t1ce.nii.gz")


def test_unknown_suffix(source_copy, tmp_path, capsys):
    source = source_copy("brats2023")
    case = source / "BraTS-GLI-00001-000"
    shutil.copy(case / "BraTS-GLI-00001-000-t1c.nii.gz", case / "BraTS-GLI-00001-000-adc.nii.gz")
    assert_fails(capsys, source, tmp_path / "out", "unknown suffix 'adc'", "BraTS-GLI-00001-000-adc.nii.gz")


def test_undeclared_brats_label_leaves_nothing_behind(source_copy, tmp_path, capsys):
    source = source_copy("brats2021")
    seg = source / "BraTS2021_00002" / "BraTS2021_00002_seg.nii.gz"
    image = read_image(seg)
    write_image(np.where(image.array == 4, 3, image.array).astype(np.uint8), image.geometry, seg)  # 3 is not 2021
    assert_fails(capsys, source, tmp_path / "out", "label values [3]", "BraTS2021_00002_seg.nii.gz", "-j", "2")
