"""`segkit preprocess`: outputs, skip/force behaviour, worker pool, user errors (exit 2)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from preprocessing_helpers import make_plans

from segkit.cli import main
from segkit.phantom import PhantomSpec, generate_dataset

SPEC = PhantomSpec(shape=(10, 20, 18), spacing=(4.0, 1.2, 1.2))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 3-case phantom dataset (read-only)."""
    return generate_dataset(tmp_path_factory.mktemp("pp") / "Phantom", num_cases=3, spec=SPEC)


def write_plans(work: Path, **kwargs) -> Path:
    """Write hand-made plans into a work dir."""
    work.mkdir(parents=True, exist_ok=True)
    path = work / "plans.json"
    path.write_text(json.dumps(make_plans(**kwargs)))
    return path


def outputs(work: Path) -> list[Path]:
    """Every preprocessed file of 3d_fullres, sorted."""
    return sorted((work / "preprocessed" / "3d_fullres").iterdir())


def test_writes_arrays_and_properties_then_skips_and_forces(dataset, tmp_path, capsys):
    work = tmp_path / "work"
    write_plans(work, target_spacing=(3.0, 1.5, 1.5))
    assert main(["preprocess", str(dataset), "--work-dir", str(work), "-c", "3d_fullres"]) == 0
    files = outputs(work)
    assert [p.name for p in files] == [f"phantom_00{i}{s}" for i in (1, 2, 3) for s in (".json", ".npy", "_seg.npy")]
    data = np.load(work / "preprocessed/3d_fullres/phantom_002.npy", mmap_mode="r")
    seg = np.load(work / "preprocessed/3d_fullres/phantom_002_seg.npy")
    properties = json.loads((work / "preprocessed/3d_fullres/phantom_002.json").read_text())
    assert data.dtype == np.float32 and seg.dtype == np.int16 and data.shape[0] == 4
    assert list(data.shape[1:]) == list(seg.shape) == properties["shape_after_resample"]
    assert properties["shape_before_crop"] == [10, 20, 18] and properties["original_spacing"] == pytest.approx([4.0, 1.2, 1.2])
    assert properties["separate_axis"] == 0 and properties["geometry"]["size"] == [18, 20, 10]
    assert set(np.unique(seg)) <= {-1, 0, 1, 2, 3} and seg.min() == -1
    for key, points in properties["class_locations"].items():
        assert points and all(seg[tuple(p)] == int(key) for p in points)

    stamps = [p.stat().st_mtime_ns for p in files]
    assert main(["preprocess", str(dataset), "--work-dir", str(work), "-c", "3d_fullres"]) == 0
    assert "0 preprocessed, 3 already done" in capsys.readouterr().out
    assert [p.stat().st_mtime_ns for p in outputs(work)] == stamps

    (work / "preprocessed/3d_fullres/phantom_003_seg.npy").unlink()   # an incomplete case is redone
    assert main(["preprocess", str(dataset), "--work-dir", str(work), "-c", "3d_fullres"]) == 0
    assert "1 preprocessed, 2 already done" in capsys.readouterr().out

    assert main(["preprocess", str(dataset), "--work-dir", str(work), "-c", "3d_fullres", "--force"]) == 0
    assert "3 preprocessed, 0 already done" in capsys.readouterr().out
    assert all(p.stat().st_mtime_ns != s for p, s in zip(outputs(work), stamps))


def test_changed_plans_redo_cases_with_worker_pool(dataset, tmp_path, capsys):
    work = tmp_path / "work"
    write_plans(work, target_spacing=(4.0, 1.2, 1.2))
    assert main(["preprocess", str(dataset), "--work-dir", str(work), "-j", "2"]) == 0
    before = json.loads((work / "preprocessed/3d_fullres/phantom_001.json").read_text())
    assert before["separate_axis"] == 0          # 4.0 / 1.2 > 3: coarse z resampled separately
    plans = tmp_path / "elsewhere" / "plans.json"
    plans.parent.mkdir()
    plans.write_text(json.dumps(make_plans(target_spacing=(2.0, 1.2, 1.2))))
    capsys.readouterr()
    assert main(["preprocess", str(dataset), "--work-dir", str(work), "--plans", str(plans), "-j", "2"]) == 0
    assert "3 preprocessed, 0 already done" in capsys.readouterr().out
    after = json.loads((work / "preprocessed/3d_fullres/phantom_001.json").read_text())
    assert after["shape_after_resample"][0] == 2 * before["shape_after_resample"][0]
    assert after["preprocessing_sha256"] != before["preprocessing_sha256"]


def test_missing_plans_file_exits_2(dataset, tmp_path, capsys):
    assert main(["preprocess", str(dataset), "--work-dir", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err
    assert "plans.json" in err and "not found" in err and "Traceback" not in err


def test_unknown_configuration_exits_2_naming_plans(dataset, tmp_path, capsys):
    plans = write_plans(tmp_path / "work")
    assert main(["preprocess", str(dataset), "--work-dir", str(tmp_path / "work"), "-c", "3d_lowres"]) == 2
    err = capsys.readouterr().err
    assert str(plans) in err and "unknown configuration '3d_lowres'" in err and "3d_fullres" in err
    assert not (tmp_path / "work" / "preprocessed" / "3d_lowres").exists()


def test_unreadable_image_exits_2_and_leaves_no_partial_case(dataset, tmp_path, capsys):
    broken = tmp_path / "Phantom"
    shutil.copytree(dataset, broken)
    bad = broken / "imagesTr" / "phantom_002_0001.nii.gz"
    bad.write_bytes(b"not an image at all")
    work = tmp_path / "work"
    write_plans(work)
    assert main(["preprocess", str(broken), "--work-dir", str(work)]) == 2
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]       # earlier lines are the progress bar
    assert last.startswith("segkit preprocess: error:") and str(bad) in last and "cannot read image" in last
    assert "Traceback" not in err
    names = [p.name for p in outputs(work)]
    assert not any(name.startswith("phantom_002") for name in names)
    assert not any(name.startswith(".") for name in names)   # no temp files left behind


def rewrite(path: Path, array: np.ndarray | None = None, spacing: tuple[float, ...] | None = None) -> None:
    """Rewrite an image file with a new array and/or spacing, keeping the rest of its geometry."""
    from segkit.io import read_image, write_image
    from segkit.io.image import Geometry

    image = read_image(path)
    geometry = image.geometry
    if spacing is not None:
        geometry = Geometry(spacing, geometry.origin, geometry.direction, geometry.size)
    write_image(image.array if array is None else array, geometry, path)


def test_channel_geometry_mismatch_and_undeclared_label_exit_2(dataset, tmp_path, capsys):
    broken = tmp_path / "Phantom"
    shutil.copytree(dataset, broken)
    channel = broken / "imagesTr" / "phantom_001_0002.nii.gz"
    rewrite(channel, spacing=(1.0, 1.0, 1.0))
    work = tmp_path / "work"
    write_plans(work)
    assert main(["preprocess", str(broken), "--work-dir", str(work)]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert str(channel) in last and "geometry differs from channel 0" in last

    shutil.copytree(dataset / "imagesTr", broken / "imagesTr", dirs_exist_ok=True)
    label_path = broken / "labelsTr" / "phantom_003.nii.gz"
    label = np.zeros(SPEC.shape, dtype=np.uint8)
    label[4, 5:8, 5:8] = 7
    rewrite(label_path, array=label)
    assert main(["preprocess", str(broken), "--work-dir", str(work)]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert str(label_path) in last and "label values [7]" in last


def test_configuration_with_identical_preprocessing_links_instead_of_recomputing(dataset, tmp_path, capsys):
    work = tmp_path / "work"
    plans = make_plans(target_spacing=(3.0, 1.5, 1.5))
    fullres = plans["configurations"]["3d_fullres"]
    plans["configurations"]["2d"] = {**fullres, "spatial_dims": 2, "slice_axis": 0,
                                     "patch_size": fullres["patch_size"][1:]}
    plans["configurations"]["3d_lowres"] = {**fullres, "target_spacing": [6.0, 3.0, 3.0]}
    work.mkdir()
    (work / "plans.json").write_text(json.dumps(plans))
    assert main(["preprocess", str(dataset), "--work-dir", str(work), "-c", "3d_fullres", "2d", "3d_lowres"]) == 0
    out = capsys.readouterr().out
    assert "2d: 0 preprocessed, 0 already done, 3 linked from an identical configuration" in out
    assert "3d_lowres: 3 preprocessed" in out
    linked = work / "preprocessed" / "2d" / "phantom_001.npy"
    assert linked.stat().st_ino == (work / "preprocessed" / "3d_fullres" / "phantom_001.npy").stat().st_ino
    assert np.load(work / "preprocessed/3d_lowres/phantom_001.npy").shape[1] < np.load(linked).shape[1]


def test_a_later_run_links_an_identical_configuration_already_on_disk(dataset, tmp_path, capsys):
    """3d_cascade_fullres preprocessed after 3d_fullres links its arrays (same hash) instead of recomputing."""
    work = tmp_path / "work"
    plans = make_plans(target_spacing=(3.0, 1.5, 1.5))
    fullres = plans["configurations"]["3d_fullres"]
    plans["configurations"]["3d_lowres"] = {**fullres, "target_spacing": [6.0, 3.0, 3.0]}
    plans["configurations"]["3d_cascade_fullres"] = {**fullres, "previous_stage": "3d_lowres"}
    work.mkdir()
    (work / "plans.json").write_text(json.dumps(plans))
    assert main(["preprocess", str(dataset), "--work-dir", str(work), "-c", "3d_fullres"]) == 0
    capsys.readouterr()
    assert main(["preprocess", str(dataset), "--work-dir", str(work), "-c", "3d_cascade_fullres", "3d_lowres"]) == 0
    out = capsys.readouterr().out
    assert "3d_cascade_fullres: 0 preprocessed, 0 already done, 3 linked from an identical configuration" in out
    assert "3d_lowres: 3 preprocessed" in out
    linked = work / "preprocessed" / "3d_cascade_fullres" / "phantom_001.npy"
    assert linked.stat().st_ino == (work / "preprocessed" / "3d_fullres" / "phantom_001.npy").stat().st_ino
