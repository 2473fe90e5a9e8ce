"""`segkit export`: BraTS 2021/2023 and MSD names, label values, uint8 and exact input geometry."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from inference_fixtures import read_array, read_geometry

from segkit.cli import main
from segkit.io.image import read_image, write_image
from segkit.phantom import PhantomSpec, generate_dataset

SPEC = PhantomSpec(shape=(12, 20, 18), spacing=(2.5, 1.1, 0.9))


def converted(root: Path, layout: str) -> tuple[Path, Path]:
    """A phantom in a challenge layout and its `segkit convert`ed raw dataset."""
    source = generate_dataset(root / f"src_{layout}", num_cases=2, layout=layout, spec=SPEC, num_test=1)
    raw = root / f"raw_{layout}"
    assert main(["convert", str(source), str(raw)]) == 0
    return source, raw


def fake_predictions(raw: Path, out: Path) -> list[str]:
    """Use the converted training labels as 'predictions' (stored label values, the input's headers)."""
    out.mkdir(parents=True)
    cases = []
    for label in sorted((raw / "labelsTr").glob("*.nii.gz")):
        shutil.copyfile(label, out / label.name)
        cases.append(label.name[: -len(".nii.gz")])
    return cases


@pytest.mark.parametrize("layout,values", [("brats2021", {0, 1, 2, 4}), ("brats2023", {0, 1, 2, 3})])
def test_brats_export_restores_original_names_values_and_geometry(tmp_path, layout, values):
    source, raw = converted(tmp_path, layout)
    cases = fake_predictions(raw, tmp_path / "pred")
    out = tmp_path / "export"
    assert main(["export", "--format", "brats", "-i", str(tmp_path / "pred"), "-o", str(out), "--dataset", str(raw)]) == 0
    assert sorted(p.name for p in out.iterdir()) == [f"{case}.nii.gz" for case in cases]
    sep = "_" if layout == "brats2021" else "-"
    for case in cases:
        exported = out / f"{case}.nii.gz"
        original_seg = source / case / f"{case}{sep}seg.nii.gz"
        array = read_array(exported)
        assert array.dtype == np.uint8
        assert set(np.unique(array)) <= values and len(np.unique(array)) == 4
        np.testing.assert_array_equal(array, read_array(original_seg))
        assert read_geometry(exported) == read_geometry(raw / "imagesTr" / f"{case}_0000.nii.gz")


def test_msd_export_writes_task_folder(tmp_path):
    _, raw = converted(tmp_path, "msd")
    cases = fake_predictions(raw, tmp_path / "pred")
    out = tmp_path / "export"
    assert main(["export", "--format", "msd", "-i", str(tmp_path / "pred"), "-o", str(out), "--dataset", str(raw),
                 "--task", "Task01_BrainTumour"]) == 0
    task = out / "Task01_BrainTumour"
    assert sorted(p.name for p in task.iterdir()) == [f"{case}.nii.gz" for case in cases]
    for case in cases:
        np.testing.assert_array_equal(read_array(task / f"{case}.nii.gz"), read_array(raw / "labelsTr" / f"{case}.nii.gz"))
        assert read_geometry(task / f"{case}.nii.gz") == read_geometry(raw / "imagesTr" / f"{case}_0000.nii.gz")


def test_export_refuses_bad_predictions_and_writes_nothing(tmp_path, capsys):
    _, raw = converted(tmp_path, "brats2021")
    cases = fake_predictions(raw, tmp_path / "pred")
    out = tmp_path / "export"
    args = ["export", "--format", "brats", "-i", str(tmp_path / "pred"), "-o", str(out), "--dataset", str(raw)]
    bad = tmp_path / "pred" / f"{cases[-1]}.nii.gz"
    image = read_image(bad)
    shifted = type(image.geometry)(image.geometry.spacing, tuple(v + 1.0 for v in image.geometry.origin),
                                   image.geometry.direction, image.geometry.size)
    write_image(image.array, shifted, bad)
    assert main(args) == 2
    assert "geometry differs" in capsys.readouterr().err
    assert not out.exists() or not any(out.iterdir())
    write_image(np.full_like(image.array, 7), image.geometry, bad)
    assert main(args) == 2
    assert "label values [7]" in capsys.readouterr().err
    assert main(["export", "--format", "msd", "-i", str(tmp_path / "pred"), "-o", str(out), "--dataset", str(raw)]) == 2
    assert "not an MSD task" in capsys.readouterr().err
    plain = generate_dataset(tmp_path / "plain", num_cases=1, spec=SPEC)
    assert main(["export", "--format", "brats", "-i", str(tmp_path / "pred"), "-o", str(out), "--dataset", str(plain)]) == 2
    assert "segkit_source" in capsys.readouterr().err


@pytest.mark.parametrize("msd_name", ["PROSTATE", "BRATS"])
def test_msd_export_without_task_uses_the_task_folder_convert_saw(tmp_path, msd_name):
    """#24 item 8: real MSD dataset.json names ("PROSTATE", "BRATS") differ from the folders; convert records the folder."""
    import json

    source = generate_dataset(tmp_path / "src", num_cases=2, layout="msd", spec=SPEC, num_test=1)
    task = tmp_path / "Task05_Prostate"
    source.rename(task)
    meta = json.loads((task / "dataset.json").read_text())
    meta["name"] = msd_name
    (task / "dataset.json").write_text(json.dumps(meta))
    raw = tmp_path / "Dataset005_Prostate"
    assert main(["convert", str(task), str(raw), "--format", "msd"]) == 0
    assert json.loads((raw / "dataset.json").read_text())["segkit_source"]["task"] == "Task05_Prostate"
    fake_predictions(raw, tmp_path / "pred")
    out = tmp_path / "export"
    assert main(["export", "--format", "msd", "-i", str(tmp_path / "pred"), "-o", str(out), "--dataset", str(raw)]) == 0
    assert (out / "Task05_Prostate").is_dir()


def test_msd_names_match_the_decathlon_folders_case_insensitively():
    from segkit.export.challenge import msd_task_folder

    class Info:
        name, root = "x", Path("/data/Dataset001_X")

    assert msd_task_folder({"original": {"name": "BRATS"}}, Info(), None) == "Task01_BrainTumour"
    assert msd_task_folder({"original": {"name": "PROSTATE"}}, Info(), None) == "Task05_Prostate"
