"""nnU-Net habits on the command line: no abbreviations, nnU-Net spellings answered with hints, helpful refusals."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from segkit.cli import build_parser, main


def _error(capsys: pytest.CaptureFixture) -> str:
    """The stderr of the last command (one line expected)."""
    return capsys.readouterr().err


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """Every registered subcommand parser by name."""
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_every_parser_refuses_abbreviations() -> None:
    parser = build_parser()
    assert parser.allow_abbrev is False
    commands = _subparsers(parser)
    assert len(commands) >= 15
    assert all(sub.allow_abbrev is False for sub in commands.values())


@pytest.mark.parametrize("argv", [
    ["train", "DATA", "--time-bud", "5"],           # prefix of --time-budget
    ["plan", "DATA", "--gpu-mem", "8"],             # prefix of --gpu-memory
    ["evaluate", "P", "R", "--allow-miss"],         # prefix of --allow-missing
    ["export-model", "M", "-o", "x.zip", "--check", "best"],
])
def test_prefixes_of_long_options_are_errors(argv: list[str], capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert "unrecognized arguments" in _error(capsys)


@pytest.mark.parametrize("argv", [["train", "DATA", "-chk", "x"], ["export-model", "M", "-o", "x.zip", "-chk", "best"],
                                  ["preprocess", "DATA", "-device", "cpu"], ["train", "DATA", "-npp", "2"]])
def test_single_dash_words_are_not_split_into_short_flags(argv: list[str], capsys: pytest.CaptureFixture) -> None:
    """`-chk` must not become `-c hk` (nor `-device` become `-d evice`) on commands that do not define it."""
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert f"unknown option {argv[-2]}" in _error(capsys)


def test_plan_on_an_msd_folder_suggests_convert(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    task = tmp_path / "Task04_Hippocampus"
    (task / "imagesTr").mkdir(parents=True)
    (task / "dataset.json").write_text(json.dumps({
        "name": "Hippocampus", "modality": {"0": "MRI"}, "labels": {"0": "background", "1": "Anterior"},
        "training": [{"image": "./imagesTr/hippocampus_001.nii.gz", "label": "./labelsTr/hippocampus_001.nii.gz"}],
        "test": []}))
    assert main(["plan", str(task)]) == 2
    err = _error(capsys)
    assert err.count("\n") == 1 and "segkit convert" in err and "--format msd" in err


def test_train_without_a_plan_says_to_plan(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    dataset = tmp_path / "Dataset001_X"
    dataset.mkdir()
    assert main(["train", str(dataset), "--work-dir", str(tmp_path / "work"), "--device", "cpu"]) == 2
    err = _error(capsys)
    assert err.count("\n") == 1 and "run `segkit plan" in err


@pytest.mark.parametrize("argv,command,hint", [
    (["train", "D", "--time-buget", "1"], "train", "did you mean --time-budget?"),
    (["train", "D", "--epoch", "3"], "train", "did you mean --epochs?"),
    (["plan", "D", "--gpu_memory", "8"], "plan", "segkit spells it --gpu-memory"),
    (["train", "D", "--num_parts", "2"], "train", "--num-parts is an option of segkit predict"),
    (["predict", "-i", "a", "-o", "b", "-m", "c", "--num_parts", "2"], "predict", "segkit spells it --num-parts"),
])
def test_unknown_long_options_answer_with_the_subcommands_usage_and_a_suggestion(argv, command, hint, capsys):
    """#24 item 9: not the top-level usage with no subcommand."""
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = _error(capsys)
    assert f"usage: segkit {command}" in err and f"segkit {command}: error:" in err and hint in err


@pytest.mark.parametrize("argv,hint", [
    (["train", "D", "-tr", "nnUNetTrainer"], "nnU-Net trainer class; segkit has none"),
    (["plan", "D", "-pl", "nnUNetPlannerResEncM"], "choose the network with --network"),
    (["train", "D", "-p", "nnUNetPlans"], "one plans.json per work dir"),
    (["evaluate", "P", "R", "-djfile", "dataset.json"], "-djfile is not needed"),
    (["train", "D", "-num_parts", "2"], "-num_parts is an option of segkit predict"),
])
def test_nnunet_single_dash_flags_get_the_right_one_line_hint(argv, hint, capsys):
    with pytest.raises(SystemExit):
        main(argv)
    err = _error(capsys)
    assert hint in err and "take two dashes" not in err


def test_nnunet_positional_train_and_sharding_spellings_are_accepted():
    args = build_parser().parse_args(["train", "1", "3d_fullres", "0"])
    assert (args.dataset, args.configuration, args.fold) == ("1", "3d_fullres", "0")
    args = build_parser().parse_args(["train", "1", "2d"])
    assert (args.configuration, args.fold) == ("2d", "0")
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "1", "3d_fullres", "0", "-c", "2d"])
    args = build_parser().parse_args(["predict", "-i", "a", "-o", "b", "-m", "c", "-num_parts", "4", "-part_id", "1"])
    assert (args.num_parts, args.part_id) == (4, 1)
