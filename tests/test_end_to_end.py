"""A BraTS-layout phantom through convert -> plan -> preprocess -> train (short) -> predict -> export."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from inference_fixtures import read_array, read_geometry

from segkit.cli import main
from segkit.phantom import PhantomSpec, generate_dataset

SPEC = PhantomSpec(shape=(16, 24, 24), spacing=(3.0, 1.5, 1.5))


@pytest.mark.slow
@pytest.mark.parametrize("layout,values,pattern", [("brats2021", {0, 1, 2, 4}, "BraTS2021_{:05d}"),
                                                   ("brats2023", {0, 1, 2, 3}, "BraTS-GLI-{:05d}-000")])
def test_brats_phantom_from_challenge_folder_to_challenge_files(tmp_path: Path, layout, values, pattern):
    source = generate_dataset(tmp_path / "challenge", num_cases=3, layout=layout, spec=SPEC, num_test=2)
    raw, work = tmp_path / "raw", tmp_path / "work"
    steps = [
        ["convert", str(source), str(raw)],
        ["plan", str(raw), "--work-dir", str(work), "--configurations", "3d_fullres", "--network", "unet",
         "--gpu-memory", "1", "--no-tradeoff"],
        ["preprocess", str(raw), "--work-dir", str(work), "-c", "3d_fullres"],
        ["train", str(raw), "--work-dir", str(work), "-c", "3d_fullres", "-f", "all", "--epochs", "1",
         "--iterations-per-epoch", "2", "--num-workers", "0", "--quiet", "--no-fit", "--device", "cpu"],
        ["predict", "-i", str(raw), "-o", str(tmp_path / "pred"), "-m", str(work / "models" / "3d_fullres"),
         "--device", "cpu"],
        ["export", "--format", "brats", "-i", str(tmp_path / "pred"), "-o", str(tmp_path / "export"),
         "--dataset", str(raw)],
    ]
    for argv in steps:
        assert main(argv) == 0, f"segkit {argv[0]} failed"
    test_cases = [pattern.format(index) for index in (4, 5)]
    assert sorted(p.name for p in (tmp_path / "export").iterdir()) == [f"{case}.nii.gz" for case in test_cases]
    sep = "_" if layout == "brats2021" else "-"
    flair = "flair" if layout == "brats2021" else "t2f"
    for case in test_cases:
        exported = tmp_path / "export" / f"{case}.nii.gz"
        labels = read_array(exported)
        assert labels.dtype == np.uint8
        assert set(np.unique(labels)) <= values
        original_image = source / case / f"{case}{sep}{flair}.nii.gz"
        assert read_geometry(exported) == read_geometry(original_image)
