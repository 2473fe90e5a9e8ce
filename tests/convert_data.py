"""Shared by the `segkit convert` tests (tests/io/test_convert*.py, tests/cli/test_convert.py): phantom sources
in the MSD and BraTS layouts, running the command, and checking a refusal left nothing behind."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from segkit.cli import main
from segkit.io.image import Geometry
from segkit.phantom import PhantomSpec, generate_dataset

SPEC = PhantomSpec(shape=(12, 16, 16))
BRATS = {  # layout -> (case folder of case 1, separator, channel suffixes in segkit channel order, ET value)
    "brats2021": ("BraTS2021_00001", "_", ("flair", "t1", "t1ce", "t2"), 4),
    "brats2023": ("BraTS-GLI-00001-000", "-", ("t2f", "t1n", "t1c", "t2w"), 3),
}


def make_sources(base: Path) -> dict[str, Path]:
    """One source folder per layout: 2 labelled cases and 1 unlabelled (validation) case."""
    return {layout: generate_dataset(base / layout, 2, layout, spec=SPEC, num_test=1)
            for layout in ("msd", "brats2021", "brats2023")}


def convert_cli(capsys: pytest.CaptureFixture, *args) -> tuple[int, str, str]:
    """Run `segkit convert ARGS`: (exit code, stdout, stderr); never a traceback."""
    code = main(["convert", *map(str, args)])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return code, captured.out, captured.err


def assert_fails(capsys: pytest.CaptureFixture, src, dest, words: str, names: str, *extra) -> None:
    """The conversion exits 2 with `words` and `names` in its message and leaves no dataset behind."""
    code, _, err = convert_cli(capsys, src, dest, *extra)
    assert code == 2, err
    assert words in err and names in err, err
    assert not (Path(dest) / "dataset.json").exists()
    assert not any(Path(dest).rglob("*.nii.gz")) if Path(dest).exists() else True


def sub_geometry(image: sitk.Image) -> Geometry:
    """Spatial (first three axes) geometry of a 4D SimpleITK image."""
    direction = np.asarray(image.GetDirection()).reshape(4, 4)[:3, :3]
    return Geometry(tuple(image.GetSpacing()[:3]), tuple(image.GetOrigin()[:3]),
                    tuple(float(v) for v in direction.flatten()), tuple(image.GetSize()[:3]))


def paint(labels: np.ndarray, dataset_labels: dict, order: list[int]) -> np.ndarray:
    """Region masks from a label map, painted back in regions_class_order (nnU-Net convention)."""
    regions = [values for name, values in dataset_labels.items() if values != 0]
    painted = np.zeros_like(labels)
    for values, value in zip(regions, order):
        painted[np.isin(labels, values)] = value
    return painted
