"""`segkit predict` flags: nnU-Net v2 spellings, no abbreviations, progress only on a terminal."""

from __future__ import annotations

import pytest
from inference_fixtures import make_model_dir, write_input_case

from segkit.cli import build_parser, main

BASE = ["predict", "-i", "in", "-o", "out", "-m", "model"]


def test_nnunet_spellings_map_to_segkit_options():
    args = build_parser().parse_args([*BASE, "-chk", "checkpoint_best.pth", "-device", "cpu", "--disable_tta",
                                      "-step_size", "0.7", "--save_probabilities", "-npp", "3", "-nps", "2",
                                      "-c", "3d_fullres", "-f", "0", "1"])
    assert (args.checkpoint, args.device, args.no_tta, args.step, args.save_probabilities) == \
        ("best", "cpu", True, 0.7, True)
    assert args.configuration == ["3d_fullres"] and args.folds == ["0", "1"] and args.nnunet_processes == 2
    assert build_parser().parse_args([*BASE, "--checkpoint", "latest"]).checkpoint == "latest"


@pytest.mark.parametrize("argv", [["-chk", "checkpoint_other.pth"], ["--save-prob"], ["--fail"], ["--no-post"],
                                  ["-chkx", "final"], ["--step_size", "0.5"]])
def test_unknown_values_and_abbreviations_are_refused(argv, capsys):
    with pytest.raises(SystemExit) as stop:
        build_parser().parse_args([*BASE, *argv])
    assert stop.value.code == 2


def test_no_progress_bar_when_stderr_is_not_a_terminal(tmp_path, capsys):
    model = make_model_dir(tmp_path / "work", num_channels=1)
    for index in range(2):
        write_input_case(tmp_path / "in", f"c{index}", (6, 12, 10), (2.0, 1.0, 1.0), num_channels=1, seed=index)
    assert main(["predict", "-i", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "-m", str(model),
                 "--device", "cpu", "--no-tta"]) == 0
    captured = capsys.readouterr()
    assert "\r" not in captured.err and "\r" not in captured.out and "2 ok" in captured.out
