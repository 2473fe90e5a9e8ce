"""Per-case checks of `segkit verify` (segkit.verify_case.check_case): every file of one case read and judged."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from segkit.io.image import Geometry, write_image
from segkit.verify_case import CaseCheck, Problem, check_case, relative_name

SHAPE = (6, 8, 10)   # (z, y, x)
LPS = Geometry(spacing=(1.0, 1.0, 2.5), origin=(0.0, 0.0, 0.0), direction=tuple(np.eye(3).ravel()),
               size=SHAPE[::-1])


def _case(root: Path, *, channels: int = 2, label: np.ndarray | None = None, images: list[np.ndarray] | None = None,
          geometries: list[Geometry] | None = None, declared: tuple[int, ...] | None = (0, 1),
          ignore_label: int | None = None) -> CaseCheck:
    """Write one case (CASE_000X.nii.gz channels, labelsTr/CASE.nii.gz) under root and describe it for check_case."""
    rng = np.random.default_rng(0)
    images = images or [rng.normal(size=SHAPE).astype(np.float32) for _ in range(channels)]
    geometries = geometries or [LPS] * len(images)
    paths = []
    for channel, (array, geometry) in enumerate(zip(images, geometries)):
        paths.append(root / "imagesTr" / f"case_{channel:04d}.nii.gz")
        write_image(array, geometry, paths[-1])
    if label is None:
        label = np.zeros(SHAPE, np.uint8)
        label[2:4, 3:6, 4:8] = 1
    write_image(label, LPS, root / "labelsTr" / "case.nii.gz")
    return CaseCheck(str(root), "case", tuple(map(str, paths)), str(root / "labelsTr" / "case.nii.gz"), declared,
                     ignore_label)


def _errors(task: CaseCheck) -> list[tuple[str, str]]:
    """(file, problem) of every error (not the info rows)."""
    return [(p.file, p.problem) for p in check_case(task) if p.severity == "error"]


def test_a_clean_case_has_only_its_orientation_as_information(tmp_path):
    problems = check_case(_case(tmp_path))
    # ITK's identity direction is LPS: the first channel's orientation is reported as an info row, nothing else
    assert problems == [Problem("case", "imagesTr/case_0000.nii.gz", "orientation LPS", "info")]


def test_non_finite_voxels_name_the_channel_and_count_them(tmp_path):
    image = np.ones(SHAPE, np.float32)
    image[0, 0, :3] = [np.nan, np.inf, -np.inf]
    task = _case(tmp_path, images=[np.ones(SHAPE, np.float32), image])
    assert _errors(task) == [("imagesTr/case_0001.nii.gz", "image contains 3 NaN/Inf voxel(s)")]


def test_a_channel_or_label_on_another_grid_names_the_first_channel(tmp_path):
    moved = Geometry(LPS.spacing, (0.0, 0.0, 5.0), LPS.direction, LPS.size)
    task = _case(tmp_path, geometries=[LPS, moved])
    errors = _errors(task)
    assert [file for file, _ in errors] == ["imagesTr/case_0001.nii.gz"]
    assert errors[0][1].startswith("geometry differs from imagesTr/case_0000.nii.gz: ") and "origin" in errors[0][1]


@pytest.mark.parametrize("label, declared, ignore_label, words", [
    (np.full(SHAPE, 7, np.uint8), (0, 1), None, "label values [7] are not declared in dataset.json (declared: [0, 1])"),
    (np.full(SHAPE, 0.5, np.float32), (0, 1), None, "non-integer label values"),
    (np.full(SHAPE, 2, np.uint8), (0, 1, 2), 2, "every voxel is the ignore label (2)"),
])
def test_label_values_are_checked_against_dataset_json(tmp_path, label, declared, ignore_label, words):
    errors = _errors(_case(tmp_path, label=label, declared=declared, ignore_label=ignore_label))
    assert len(errors) == 1 and errors[0][0] == "labelsTr/case.nii.gz" and words in errors[0][1], errors


def test_an_unusable_dataset_json_skips_only_the_value_check(tmp_path):
    assert _errors(_case(tmp_path, label=np.full(SHAPE, 7, np.uint8), declared=None)) == []


def test_a_2d_channel_is_an_error_and_missing_files_say_which_kind(tmp_path):
    flat = np.ones((1, 8, 10), np.float32)[0]
    write_image(flat, Geometry((1.0, 1.0), (0.0, 0.0), (1.0, 0.0, 0.0, 1.0), (10, 8)), tmp_path / "flat.nii.gz")
    task = _case(tmp_path, channels=1)
    task = CaseCheck(task.root, "case", (str(tmp_path / "flat.nii.gz"), str(tmp_path / "imagesTr" / "gone.nii.gz")),
                     str(tmp_path / "labelsTr" / "gone.nii.gz"), (0, 1))
    errors = dict(_errors(task))
    assert errors.pop("flat.nii.gz").startswith("image is 2D")
    assert errors == {"imagesTr/gone.nii.gz": "missing channel file", "labelsTr/gone.nii.gz": "missing label file"}


def test_an_unreadable_file_is_one_problem_not_an_exception(tmp_path):
    task = _case(tmp_path, channels=1)
    Path(task.images[0]).write_bytes(b"not an image")
    errors = _errors(task)
    assert [file for file, _ in errors] == ["imagesTr/case_0000.nii.gz"] and errors[0][1]


def test_relative_name_inside_and_outside_the_dataset(tmp_path):
    assert relative_name(tmp_path, tmp_path / "imagesTr" / "a.nii.gz") == "imagesTr/a.nii.gz"
    assert relative_name(tmp_path / "root", tmp_path / "elsewhere.nii.gz") == str(tmp_path / "elsewhere.nii.gz")
