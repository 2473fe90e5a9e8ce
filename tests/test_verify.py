"""`segkit verify`: every kind of malformed dataset is reported, naming the file, with exit 2."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from segkit.cli import main
from segkit.io.image import Geometry, read_image, write_image
from segkit.phantom import PhantomSpec, generate_dataset
from segkit.verify import Problem, verify_dataset

SPEC = PhantomSpec(shape=(12, 16, 16))
CASE = "phantom_001"
OTHER = "phantom_002"


@pytest.fixture(scope="module")
def clean_dataset(tmp_path_factory) -> Path:
    """A small valid phantom dataset (2 cases, 4 channels, oblique anisotropic geometry)."""
    return generate_dataset(tmp_path_factory.mktemp("clean") / "Phantom", 2, "nnunet", spec=SPEC)


@pytest.fixture
def dataset(clean_dataset: Path, tmp_path: Path) -> Path:
    """A fresh copy of the clean dataset for one mutation."""
    return Path(shutil.copytree(clean_dataset, tmp_path / "Phantom"))


def _image(root: Path, case: str = CASE, channel: int = 0) -> Path:
    return root / "imagesTr" / f"{case}_{channel:04d}.nii.gz"


def _label(root: Path, case: str = CASE) -> Path:
    return root / "labelsTr" / f"{case}.nii.gz"


def _edit_json(root: Path, edit) -> None:
    data = json.loads((root / "dataset.json").read_text())
    edit(data)
    (root / "dataset.json").write_text(json.dumps(data))


def _rewrite(path: Path, array_fn=None, geometry_fn=None) -> None:
    """Rewrite an image with a changed array and/or geometry."""
    image = read_image(path)
    array = array_fn(image.array) if array_fn else image.array
    geometry = geometry_fn(image.geometry) if geometry_fn else image.geometry
    write_image(array, geometry, path)


def _with(geometry: Geometry, **changes) -> Geometry:
    return Geometry(**{**geometry.__dict__, **changes})


def unreadable(root):
    _image(root, channel=1).write_bytes(b"this is not an image at all" * 10)
    return f"{CASE}_0001.nii.gz"


def truncated(root):
    path = _image(root, channel=2)
    raw = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(raw[: len(raw) // 2]))
    return f"{CASE}_0002.nii.gz"


def missing_channel(root):
    _image(root, OTHER, 3).unlink()
    return f"{OTHER}_0003.nii.gz"


def channel_spacing_mismatch(root):
    _rewrite(_image(root, channel=1), geometry_fn=lambda g: _with(g, spacing=(1.3, 1.2, 3.0)))
    return f"{CASE}_0001.nii.gz"


def channel_shape_mismatch(root):
    path = _image(root, OTHER, 2)
    image = read_image(path)
    smaller = image.array[:, :-2]
    write_image(smaller, _with(image.geometry, size=tuple(reversed(smaller.shape))), path)
    return f"{OTHER}_0002.nii.gz"


def label_origin_mismatch(root):
    _rewrite(_label(root), geometry_fn=lambda g: _with(g, origin=(g.origin[0] + 5.0,) + g.origin[1:]))
    return f"labelsTr/{CASE}.nii.gz"


def direction_mismatch(root):
    _rewrite(_image(root, channel=3), geometry_fn=lambda g: _with(g, direction=(1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0)))
    return f"{CASE}_0003.nii.gz"


def undeclared_label(root):
    _rewrite(_label(root, OTHER), array_fn=lambda a: np.where(a == 2, 7, a).astype(np.uint8))
    return f"labelsTr/{OTHER}.nii.gz"


def fractional_label(root):
    _rewrite(_label(root), array_fn=lambda a: a.astype(np.float32) * 0.5)
    return f"labelsTr/{CASE}.nii.gz"


def nan_in_image(root):
    _rewrite(_image(root, channel=0), array_fn=lambda a: np.where(a > a.max() * 0.9, np.nan, a).astype(np.float32))
    return f"{CASE}_0000.nii.gz"


def inf_in_image(root):
    def add_inf(array):
        array = array.copy()
        array[3, 4, 5] = np.inf
        return array
    _rewrite(_image(root, OTHER, 1), array_fn=add_inf)
    return f"{OTHER}_0001.nii.gz"


def image_2d(root):
    path = _image(root, channel=2)
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((16, 16), np.float32)), str(path))
    return f"{CASE}_0002.nii.gz"


def empty_dataset(root):
    for folder in ("imagesTr", "labelsTr"):
        shutil.rmtree(root / folder)
        (root / folder).mkdir()
    return "imagesTr"


def escaping_path(root):
    _edit_json(root, lambda d: d.update(training=[
        {"image": ["../outside_0000.nii.gz"], "label": "labelsTr/phantom_001.nii.gz"}]))
    return "dataset.json"


def missing_label(root):
    _label(root, OTHER).unlink()
    return f"labelsTr/{OTHER}.nii.gz"


def label_without_images(root):
    shutil.copy(_label(root), root / "labelsTr" / "phantom_009.nii.gz")
    return "labelsTr/phantom_009.nii.gz"


def missing_dataset_json(root):
    (root / "dataset.json").unlink()
    return "dataset.json"


def invalid_json(root):
    (root / "dataset.json").write_text('{"channel_names": {"0": "FLAIR"},')
    return "dataset.json"


def missing_labels_key(root):
    _edit_json(root, lambda d: d.pop("labels"))
    return "dataset.json"


def bad_channel_key(root):
    _edit_json(root, lambda d: d.update(channel_names={"zero": "FLAIR"}))
    return "dataset.json"


def undeclared_channel(root):
    shutil.copy(_image(root, channel=0), _image(root, channel=4))
    return f"{CASE}_0004.nii.gz"


def wrong_num_training(root):
    _edit_json(root, lambda d: d.update(numTraining=5))
    return "dataset.json"


def bad_regions_class_order(root):
    _edit_json(root, lambda d: d.update(labels={"background": 0, "whole tumor": [1, 2, 3], "tumor core": [1, 3],
                                                "enhancing tumor": [3]}, regions_class_order=[2, 1]))
    return "dataset.json"


MUTATIONS = [bad_regions_class_order, unreadable, truncated, missing_channel, channel_spacing_mismatch, channel_shape_mismatch,
             label_origin_mismatch, direction_mismatch, undeclared_label, fractional_label, nan_in_image,
             inf_in_image, image_2d, empty_dataset, escaping_path, missing_label, label_without_images,
             missing_dataset_json, invalid_json, missing_labels_key, bad_channel_key, undeclared_channel,
             wrong_num_training]
EXPECTED_WORDS = {
    bad_regions_class_order: "regions_class_order has 2 entries",
    unreadable: "cannot read", truncated: "cannot read", missing_channel: "missing channel file",
    channel_spacing_mismatch: "spacing", channel_shape_mismatch: "shape", label_origin_mismatch: "origin",
    direction_mismatch: "direction", undeclared_label: "[7] are not declared", fractional_label: "non-integer",
    nan_in_image: "NaN/Inf", inf_in_image: "1 NaN/Inf", image_2d: "2D", empty_dataset: "no training cases",
    escaping_path: "escapes the dataset folder", missing_label: "missing label file",
    label_without_images: "label file without images", missing_dataset_json: "not found",
    invalid_json: "not valid JSON", missing_labels_key: "labels", bad_channel_key: "channel_names' keys must be 0, 1",
    undeclared_channel: "channel 4 is not declared", wrong_num_training: "numTraining is 5",
}


def _run(capsys, *args) -> tuple[int, str, str]:
    code = main(["verify", *map(str, args)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_clean_dataset_passes(dataset, capsys):
    code, out, err = _run(capsys, dataset)
    assert code == 0, out
    assert out.startswith("OK:") and "2 training" in out and len(out.strip().splitlines()) == 1
    assert "Traceback" not in err
    assert verify_dataset(dataset) == []


@pytest.mark.parametrize("mutate", MUTATIONS, ids=lambda f: f.__name__)
def test_malformed_dataset_is_reported(dataset, capsys, mutate):
    offending = mutate(dataset)
    code, out, err = _run(capsys, dataset)
    assert code == 2
    assert "Traceback" not in err
    rows = [line for line in out.splitlines() if offending in line]
    assert rows, f"{offending} not named in:\n{out}"
    assert any(EXPECTED_WORDS[mutate] in row for row in rows), out


def test_all_problems_reported_at_once_with_json(dataset, capsys, tmp_path):
    expected = [m(dataset) for m in (nan_in_image, missing_channel, undeclared_label, label_without_images)]
    json_out = tmp_path / "problems.json"
    code, out, err = _run(capsys, dataset, "-j", "2", "--json", json_out)
    assert code == 2 and "Traceback" not in err
    for name in expected:
        assert name in out
    report = json.loads(json_out.read_text())
    assert report["ok"] is False
    problems = [Problem(**p) for p in report["problems"]]
    assert problems == verify_dataset(dataset, num_workers=1)
    assert {p.case for p in problems} == {CASE, OTHER, "phantom_009"}
    assert out.splitlines()[0].split() == ["case", "file", "problem"]


def test_test_images_are_checked(clean_dataset, tmp_path):
    root = generate_dataset(tmp_path / "WithTest", 1, "nnunet", spec=SPEC, num_test=1)
    assert verify_dataset(root) == []
    test_file = root / "imagesTs" / "phantom_002_0001.nii.gz"
    _rewrite(test_file, array_fn=lambda a: np.full_like(a, np.nan))
    problems = verify_dataset(root)
    assert [(p.case, p.file) for p in problems] == [("phantom_002", "imagesTs/phantom_002_0001.nii.gz")]


def test_missing_folder_is_one_row(tmp_path, capsys):
    code, out, err = _run(capsys, tmp_path / "nope")
    assert code == 2 and "dataset folder not found" in out and "Traceback" not in err


def test_nrrd_dataset_is_checked_with_simpleitk(clean_dataset, tmp_path):
    root = tmp_path / "Nrrd"
    for path in sorted((clean_dataset / "imagesTr").iterdir()) + sorted((clean_dataset / "labelsTr").iterdir()):
        image = read_image(path)
        write_image(image.array, image.geometry, root / path.parent.name / path.name.replace(".nii.gz", ".nrrd"))
    _edit_json_copy(clean_dataset, root, file_ending=".nrrd")
    assert verify_dataset(root) == []
    _rewrite(root / "imagesTr" / "phantom_002_0003.nrrd", array_fn=lambda a: np.full_like(a, np.inf))
    _rewrite(root / "labelsTr" / "phantom_001.nrrd", geometry_fn=lambda g: _with(g, spacing=(1.2, 1.2, 2.0)))
    assert [(p.file, p.problem.split(" ")[0]) for p in verify_dataset(root, num_workers=2)] == [
        ("labelsTr/phantom_001.nrrd", "geometry"), ("imagesTr/phantom_002_0003.nrrd", "image")]


def _edit_json_copy(source: Path, dest: Path, **changes) -> None:
    data = json.loads((source / "dataset.json").read_text())
    data.update(changes)
    (dest / "dataset.json").write_text(json.dumps(data))


def test_cases_stored_unlike_most_are_information_and_a_non_rotation_direction_is_an_error(tmp_path, capsys):
    from orientation_data import write_lateral_dataset

    from segkit.verify import inspect_dataset
    from segkit.verify_case import FileContent, _image_problems

    root = write_lateral_dataset(tmp_path / "Lateral", ["RAS", "RAS", "AIL"], num_cases=3)
    report = inspect_dataset(root)
    assert report.ok and report.problems == []
    assert [(n.case, n.severity) for n in report.notes] == [("case_002", "info")]
    assert "stored AIL, most cases are RAS (2 of 3)" in report.notes[0].problem
    assert main(["verify", str(root), "--json", str(tmp_path / "verify.json")]) == 0
    assert "stored AIL" in capsys.readouterr().out
    assert json.loads((tmp_path / "verify.json").read_text())["notes"][0]["case"] == "case_002"
    # a sheared (non-orthonormal) direction is an error naming the file
    path = root / "imagesTr" / "case_000_0000.nii.gz"
    image = sitk.ReadImage(str(path))
    converted = root / "imagesTr" / "case_000_0000.mha"
    image.SetDirection((1.0, 0.0, 0.0, 0.4, 1.0, 0.0, 0.0, 0.0, 1.0))
    sitk.WriteImage(image, str(converted))
    content = read_image(converted)
    assert content.geometry.direction[3] == pytest.approx(0.4)
    problems = _image_problems(FileContent(content.geometry, 3, content.array))
    assert problems and "not a rotation" in problems[0]
