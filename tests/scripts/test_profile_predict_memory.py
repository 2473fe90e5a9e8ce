"""scripts/profile_predict_memory.py: runs `segkit predict`, prints RSS lines naming the segkit function, and the peak."""

from __future__ import annotations

import re
import sys

import numpy as np
from inference_fixtures import make_model_dir, read_array
from script_loading import load_script

from segkit.io.image import Geometry, write_image


def test_the_profile_names_segkit_frames_and_the_peak(tmp_path, monkeypatch, capsys):
    module = load_script("profile_predict_memory")
    model_dir = make_model_dir(tmp_path / "work", num_channels=1)
    volume = (100 + np.random.default_rng(0).normal(0, 10, (8, 48, 48))).astype(np.int16)
    write_image(volume, Geometry((1.0, 1.0, 2.5), (0.0, 0.0, 0.0), (1, 0, 0, 0, 1, 0, 0, 0, 1), (48, 48, 8)),
                tmp_path / "in" / "case_0000.nii.gz")
    monkeypatch.setattr(module, "STEP_MIB", 0)     # a line per sample: every stage shows up
    monkeypatch.setattr(sys, "argv", ["profile", "-i", str(tmp_path / "in"), "-o", str(tmp_path / "out"),
                                      "-m", str(model_dir), "--device", "cpu", "--no-tta", "--threads", "1"])
    assert module.main() == 0
    err = capsys.readouterr().err
    assert read_array(tmp_path / "out" / "case.nii.gz").shape == (8, 48, 48)
    peak = [line for line in err.splitlines() if line.startswith("peak RSS ")]
    assert len(peak) == 1 and float(peak[0].split()[2]) > 0.05          # GiB: at least the interpreter and torch
    frames = [line for line in err.splitlines() if re.search(r" GiB \| .*\w+\.py:\d+:\w+", line)]
    assert frames and any("cli/predict.py" in line for line in frames)  # lines name the segkit functions
