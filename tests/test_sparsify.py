"""The ignore label's dataset convention (nnU-Net's rules, verify) and `segkit sparsify` (slices, scribbles)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from segkit.cli import main
from segkit.errors import UserError
from segkit.io.dataset import load_dataset
from segkit.io.image import read_image, write_image
from segkit.sparsify import SparsifyOptions, scribble_mask, slice_mask, sparsify_dataset
from segkit.verify import verify_dataset


def _set_labels(root: Path, labels: dict) -> None:
    data = json.loads((root / "dataset.json").read_text())
    (root / "dataset.json").write_text(json.dumps(data | {"labels": labels}))


@pytest.fixture
def dataset(tiny_dataset, tmp_path) -> Path:
    return Path(shutil.copytree(tiny_dataset, tmp_path / "Phantom"))


def test_ignore_label_follows_nnunet_rules(dataset):
    dense = {"background": 0, "necrosis": 1, "edema": 2, "enhancing": 3}
    _set_labels(dataset, dense | {"ignore": 4})
    info = load_dataset(dataset)
    assert info.ignore_label == 4 and list(info.regions) == ["necrosis", "edema", "enhancing"]
    assert info.foreground_labels == [1, 2, 3] and 4 in info.label_values
    for bad, message in (({"ignore": 2}, "highest"), ({"ignore": [4]}, "one non-zero integer"),
                         ({"ignore": 0}, "one non-zero integer")):
        _set_labels(dataset, dense | bad)
        with pytest.raises(UserError, match=message):
            load_dataset(dataset)
        assert any(message in p.problem for p in verify_dataset(dataset))
    # region-based (BraTS-style): regions never include the ignore value
    _set_labels(dataset, {"background": 0, "whole": [1, 2, 3], "core": [1, 3], "enhancing": [3], "ignore": 4})
    data = json.loads((dataset / "dataset.json").read_text())
    (dataset / "dataset.json").write_text(json.dumps(data | {"regions_class_order": [2, 1, 3]}))
    info = load_dataset(dataset)
    assert info.region_based and info.ignore_label == 4 and list(info.regions) == ["whole", "core", "enhancing"]
    assert verify_dataset(dataset) == []


def test_verify_reports_a_case_without_any_annotated_voxel(dataset):
    _set_labels(dataset, {"background": 0, "necrosis": 1, "edema": 2, "enhancing": 3, "ignore": 4})
    label_path = dataset / "labelsTr" / "phantom_002.nii.gz"
    label = read_image(label_path)
    write_image(np.full_like(label.array, 4), label.geometry, label_path)
    problems = verify_dataset(dataset)
    assert [(p.case, p.file) for p in problems] == [("phantom_002", "labelsTr/phantom_002.nii.gz")]
    assert "every voxel is the ignore label (4)" in problems[0].problem


def test_slice_and_scribble_masks():
    rng = np.random.default_rng(0)
    keep = slice_mask((20, 30, 10), 5, (0, 1), rng)
    z_kept = np.flatnonzero(keep.all(axis=(1, 2)))
    y_kept = np.flatnonzero(keep.all(axis=(0, 2)))
    assert len(z_kept) == 4 and np.all(np.diff(z_kept) == 5) and len(y_kept) == 6 and np.all(np.diff(y_kept) == 5)
    assert keep.mean() == pytest.approx(1 - (1 - 4 / 20) * (1 - 6 / 30))
    label = np.zeros((12, 20, 20), dtype=np.uint8)
    label[2:10, 4:14, 4:14] = 1
    label[3:9, 14:20, 14:20] = 2
    scribbles = scribble_mask(label, [0, 1, 2], 0, 3, np.random.default_rng(0))
    for value in (0, 1, 2):
        on = scribbles & (label == value)
        assert on.any() and on.sum() < (label == value).sum() / 2      # some, but sparse
    assert len(np.flatnonzero((scribbles & (label == 1)).any(axis=(1, 2)))) == 3    # three slices of the block


def test_sparsify_cli_writes_a_deterministic_sparse_copy(tiny_dataset, tmp_path, capsys):
    out = tmp_path / "Sparse"
    assert main(["sparsify", str(tiny_dataset), str(out), "--slices", "4", "--axes", "0", "2", "--seed", "3"]) == 0
    assert "annotated" in capsys.readouterr().out
    data = json.loads((out / "dataset.json").read_text())
    assert data["labels"]["ignore"] == 4 and data["segkit_sparsify"]["mode"] == "slices"
    assert 0.2 < data["segkit_sparsify"]["annotated_fraction"] < 0.6
    for source in sorted((tiny_dataset / "labelsTr").iterdir()):
        dense, sparse = read_image(source), read_image(out / "labelsTr" / source.name)
        assert dense.geometry.mismatch(sparse.geometry) is None
        kept = sparse.array != 4
        assert np.array_equal(sparse.array[kept], dense.array[kept])        # kept voxels keep their labels
        assert kept.all(axis=(1, 2)).sum() == 4                             # every 4th of 16 z slices
    names = sorted(p.name for p in (out / "imagesTr").iterdir())
    assert names == sorted(p.name for p in (tiny_dataset / "imagesTr").iterdir())
    assert verify_dataset(out) == []
    again = tmp_path / "Again"
    assert main(["sparsify", str(tiny_dataset), str(again), "--slices", "4", "--axes", "0", "2", "--seed", "3"]) == 0
    for path in (out / "labelsTr").iterdir():
        assert np.array_equal(read_image(path).array, read_image(again / "labelsTr" / path.name).array)
    other = tmp_path / "Other"
    sparsify_dataset(tiny_dataset, other, SparsifyOptions(slices=4, axes=(0, 2), seed=4))
    assert any(not np.array_equal(read_image(p).array, read_image(other / "labelsTr" / p.name).array)
               for p in (out / "labelsTr").iterdir())
    # scribbles of the sparse copy keep its ignore value
    scribbled = tmp_path / "Scribbles"
    assert main(["sparsify", str(out), str(scribbled), "--scribbles"]) == 0
    assert json.loads((scribbled / "dataset.json").read_text())["labels"]["ignore"] == 4


def test_sparsify_bad_input_exits_2_and_writes_nothing(tiny_dataset, tmp_path, capsys):
    out = tmp_path / "Sparse"
    for args in (["--slices", "0"], ["--slices", "4", "--axes", "3"], ["--slices", "4", "--axes", "1", "1"]):
        assert main(["sparsify", str(tiny_dataset), str(out), *args]) == 2
        assert not out.exists()
        assert len(capsys.readouterr().err.strip().splitlines()) == 1
    out.mkdir()
    assert main(["sparsify", str(tiny_dataset), str(out), "--slices", "4"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "already exists" in err[0]
    assert [p.name for p in tmp_path.iterdir()] == ["Sparse"]
