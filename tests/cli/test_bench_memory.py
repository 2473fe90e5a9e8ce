"""segkit bench-memory: user mistakes end with one message and exit code 2."""

from __future__ import annotations

import json

import pytest
import torch

from segkit.cli import main


def test_missing_plans_file_is_a_user_error(tmp_path, capsys) -> None:
    """A plans.json that does not exist is named in a one-line error."""
    assert main(["bench-memory", str(tmp_path / "plans.json")]) == 2
    assert "plans.json" in capsys.readouterr().err


def test_unknown_configuration_and_bad_patch(tmp_path, capsys) -> None:
    """An unknown configuration or a patch with the wrong number of axes is refused before any work."""
    arch = {"family": "unet", "spatial_dims": 3, "features_per_stage": [8, 16], "kernel_sizes": [[3, 3, 3]] * 2,
            "strides": [[1, 1, 1], [2, 2, 2]], "blocks_per_stage": [1, 1], "decoder_blocks_per_stage": [1]}
    plans = {"num_channels": 1, "num_outputs": 2,
             "configurations": {"3d_fullres": {"architecture": arch, "patch_size": [8, 8, 8], "batch_size": 1,
                                               "target_spacing": [1.0, 1.0, 1.0]}}}
    path = tmp_path / "plans.json"
    path.write_text(json.dumps(plans))
    assert main(["bench-memory", str(path), "--configuration", "2d"]) == 2
    assert "unknown configuration '2d' (plans.json has: 3d_fullres)" in capsys.readouterr().err
    assert main(["bench-memory", str(path), "--patch-size", "8", "8"]) == 2
    assert "--patch-size" in capsys.readouterr().err


def test_measures_a_tiny_configuration(tmp_path, capsys) -> None:
    """A real (tiny) measurement writes measured and predicted bytes for each requested mode."""
    arch = {"family": "revmbconv", "spatial_dims": 3, "features_per_stage": [8, 16], "kernel_sizes": [[1, 3, 3], [3, 3, 3]],
            "strides": [[1, 1, 1], [1, 2, 2]], "blocks_per_stage": [1, 1], "decoder_blocks_per_stage": [1],
            "expansion_ratios": [1, 2], "norm": "instance", "deep_supervision": True}
    plans = {"num_channels": 2, "num_outputs": 3,
             "configurations": {"3d_fullres": {"architecture": arch, "patch_size": [4, 16, 16], "batch_size": 1,
                                               "target_spacing": [1.0, 1.0, 1.0]}}}
    path = tmp_path / "plans.json"
    path.write_text(json.dumps(plans))
    out = tmp_path / "result.json"
    assert main(["bench-memory", str(path), "--modes", "reversible", "--steps", "1", "--out", str(out)]) == 0
    result = json.loads(out.read_text())["results"][0]
    assert result["mode"] == "reversible" and result["peak_bytes"] > 0
    assert result["predicted"]["total"] > result["predicted_step_bytes"] > 0
    assert "reversible" in capsys.readouterr().out


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on machines without CUDA")
def test_cuda_and_fp16_are_refused_without_a_gpu(tmp_path, capsys):
    path = tmp_path / "plans.json"
    path.write_text("{}")
    assert main(["bench-memory", str(path), "--device", "cuda"]) == 2
    assert "CUDA is not available" in capsys.readouterr().err
    assert main(["bench-memory", str(path), "--precision", "fp16"]) == 2
    assert "fp16 needs CUDA" in capsys.readouterr().err


def test_an_incomplete_configuration_is_named(tmp_path, capsys) -> None:
    """A configuration entry missing a planned field is refused with the file and the field named (exit 2)."""
    plans = {"num_channels": 1, "num_outputs": 2, "configurations": {"3d_fullres": {"patch_size": [8, 8, 8]}}}
    path = tmp_path / "plans.json"
    path.write_text(json.dumps(plans))
    assert main(["bench-memory", str(path)]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "lacks 'target_spacing'" in err
