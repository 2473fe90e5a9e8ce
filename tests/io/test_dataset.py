"""dataset.json and the raw layout: labels, regions and the ignore label; cases by channel files; each problem named."""

from __future__ import annotations

import json

import pytest

from segkit.errors import UserError
from segkit.io.dataset import load_dataset, training_cases


def write_dataset(root, **changes) -> None:
    """A 2-channel dataset.json (background, two classes, ignore) with changes."""
    root.mkdir(parents=True, exist_ok=True)
    declared = {"name": "Toy", "channel_names": {"0": "T1", "1": "FLAIR"}, "file_ending": ".nii.gz",
                "labels": {"background": 0, "edema": 1, "tumour": 2, "ignore": 3}} | changes
    (root / "dataset.json").write_text(json.dumps(declared))


def test_labels_channels_and_cases_by_their_channel_files(tmp_path) -> None:
    root = tmp_path / "Dataset001_Toy"
    write_dataset(root)
    (root / "imagesTr").mkdir()
    for name in ["b_0001.nii.gz", "a_0000.nii.gz", "a_0001.nii.gz", "b_0000.nii.gz", ".a_0000.nii.gz", "notes.txt"]:
        (root / "imagesTr" / name).write_bytes(b"")
    info = load_dataset(root)
    assert info.channel_list == ["T1", "FLAIR"] and info.num_channels == 2 and not info.region_based
    assert info.ignore_label == 3 and info.foreground_labels == [1, 2]
    assert info.regions == {"edema": [1], "tumour": [2]}
    cases = training_cases(info)
    assert [c.case_id for c in cases] == ["a", "b"]
    assert [p.name for p in cases[0].images] == ["a_0000.nii.gz", "a_0001.nii.gz"]
    assert cases[1].label == root / "labelsTr" / "b.nii.gz"


def test_region_labels_need_their_class_order(tmp_path) -> None:
    regions = {"background": 0, "whole": [1, 2], "core": [2]}
    write_dataset(tmp_path / "r", labels=regions, regions_class_order=[1, 2])
    info = load_dataset(tmp_path / "r")
    assert info.region_based and info.regions == {"whole": [1, 2], "core": [2]} and info.label_values == [0, 1, 2]
    write_dataset(tmp_path / "n", labels=regions)
    with pytest.raises(UserError, match="region-based 'labels' need 'regions_class_order'"):
        load_dataset(tmp_path / "n")


@pytest.mark.parametrize("changes, message", [
    ({"labels": {"tumour": 1}}, "must declare background as 0"),
    ({"labels": {"background": 0, "tumour": 2, "ignore": 1}}, "must be the highest label value"),
    ({"channel_names": {"0": "T1", "2": "FLAIR"}}, "without gaps"),
    ({"file_ending": "nii"}, "must look like '.nii.gz'"),
])
def test_each_problem_is_named_with_the_file(tmp_path, changes, message) -> None:
    write_dataset(tmp_path, **changes)
    with pytest.raises(UserError, match=message) as err:
        load_dataset(tmp_path)
    assert err.value.path == str(tmp_path / "dataset.json")
    with pytest.raises(UserError, match="dataset folder not found"):
        load_dataset(tmp_path / "missing")
