"""nnU-Net habits on the command line: no abbreviations, -d ID / DatasetXXX_Name lookup, helpful refusals."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest

from segkit.cli import build_parser, main
from segkit.cli.datasets import resolve_dataset
from segkit.errors import UserError
from segkit.io.image import Geometry, write_image

GEOMETRY = Geometry(spacing=(1.0, 1.0, 1.0), origin=(0.0, 0.0, 0.0), direction=tuple(np.eye(3).ravel()),
                    size=(6, 5, 4))


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


def test_import_nnunet_accepts_chk(tmp_path: Path) -> None:
    args = build_parser().parse_args(["import-nnunet", "A", "B", "-chk", "best"])
    assert args.checkpoint == "best"
    args = build_parser().parse_args(["import-nnunet", "A", "B", "-chk", "checkpoint_latest.pth"])
    assert args.checkpoint == "latest"


def _raw_root(tmp_path: Path) -> Path:
    """A raw folder with Dataset001_Liver and Dataset012_Heart."""
    root = tmp_path / "raw"
    for name in ("Dataset001_Liver", "Dataset012_Heart"):
        (root / name).mkdir(parents=True)
    return root


@pytest.mark.parametrize("variable", ["nnUNet_raw", "SEGKIT_RAW"])
@pytest.mark.parametrize("value,dataset_id,expected", [
    (None, "1", "Dataset001_Liver"), (None, "001", "Dataset001_Liver"), ("12", None, "Dataset012_Heart"),
    ("Dataset012_Heart", None, "Dataset012_Heart"), ("Liver", None, "Dataset001_Liver"),
    (None, "Dataset001_Liver", "Dataset001_Liver")])
def test_dataset_ids_and_names_resolve_through_raw_variables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                             variable: str, value: str | None,
                                                             dataset_id: str | None, expected: str) -> None:
    monkeypatch.delenv("nnUNet_raw", raising=False)
    monkeypatch.delenv("SEGKIT_RAW", raising=False)
    monkeypatch.setenv(variable, str(_raw_root(tmp_path)))
    monkeypatch.chdir(tmp_path)
    assert Path(resolve_dataset(value, dataset_id)).name == expected


def test_segkit_raw_is_searched_before_nnunet_raw(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    nnunet = _raw_root(tmp_path / "a")
    ours = tmp_path / "b"
    (ours / "Dataset001_Other").mkdir(parents=True)
    monkeypatch.setenv("nnUNet_raw", str(nnunet))
    monkeypatch.setenv("SEGKIT_RAW", str(ours))
    assert resolve_dataset(None, "1") == str(ours / "Dataset001_Other")


def test_unknown_dataset_names_the_searched_roots(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SEGKIT_RAW", raising=False)
    monkeypatch.setenv("nnUNet_raw", str(_raw_root(tmp_path)))
    with pytest.raises(UserError, match=r"dataset '7' not found.*\$nnUNet_raw="):
        resolve_dataset(None, "7")
    monkeypatch.delenv("nnUNet_raw")
    with pytest.raises(UserError, match="not found"):
        resolve_dataset("Dataset001_Liver", None)
    with pytest.raises(UserError, match="either"):
        resolve_dataset("a", "1")


def test_plan_with_dataset_id_reaches_the_dataset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture) -> None:
    """`segkit plan -d 1` looks the folder up (the issue: it said 'folder does not exist')."""
    monkeypatch.setenv("nnUNet_raw", str(_raw_root(tmp_path)))
    monkeypatch.delenv("SEGKIT_RAW", raising=False)
    assert main(["plan", "-d", "1"]) == 2
    err = _error(capsys)
    assert "Dataset001_Liver" in err and "dataset.json" in err   # found; then its (absent) dataset.json


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


def _label_folder(folder: Path, cases: list[str], value: int = 1) -> Path:
    """Label maps with values 0 and `value`."""
    folder.mkdir(parents=True, exist_ok=True)
    for case in cases:
        labels = np.zeros((4, 5, 6), np.uint8)
        labels[1:3, 1:4, 2:5] = value
        write_image(labels, GEOMETRY, folder / f"{case}.nii.gz")
    return folder


def _dataset(root: Path, cases: list[str]) -> Path:
    """A raw dataset folder with labelsTr and a dataset.json declaring labels 0 and 1."""
    _label_folder(root / "labelsTr", cases)
    (root / "dataset.json").write_text(json.dumps({"channel_names": {"0": "T1"}, "labels": {"background": 0, "a": 1},
                                                   "file_ending": ".nii.gz"}))
    return root


def test_evaluate_refuses_references_as_predictions(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """nnU-Net's order (REF PRED) is refused with a hint, and nothing is written into labelsTr."""
    dataset = _dataset(tmp_path / "Dataset001_X", ["a", "b", "c"])
    pred = _label_folder(tmp_path / "pred", ["a", "b", "c"])
    assert main(["evaluate", str(dataset / "labelsTr"), str(pred)]) == 2
    err = _error(capsys)
    assert err.count("\n") == 1 and "swapped" in err
    assert not (dataset / "labelsTr" / "summary.json").exists()
    assert main(["evaluate", str(pred), str(dataset), "-o", str(dataset / "labelsTr" / "s.json")]) == 2
    assert "refusing to write" in _error(capsys)
    assert main(["evaluate", str(pred), str(dataset)]) == 0
    assert (pred / "summary.json").is_file()


def test_evaluate_detects_swapped_plain_folders(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    references = _label_folder(tmp_path / "refs", ["a", "b", "c", "d"])
    predictions = _label_folder(tmp_path / "preds", ["a", "b"])
    assert main(["evaluate", str(references), str(predictions)]) == 2   # nnU-Net's order
    err = _error(capsys)
    assert err.count("\n") == 1 and "fewer" in err and "swapped" in err
    assert not (references / "summary.json").exists()
    assert main(["evaluate", str(references), str(predictions), "--subset"]) == 0


def test_evaluate_detects_label_values_not_in_dataset_json(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    dataset = _dataset(tmp_path / "Dataset001_X", ["a", "b"])
    images = _label_folder(tmp_path / "images", ["a", "b"], value=117)   # e.g. an image folder, not labels
    assert main(["evaluate", str(images), str(dataset)]) == 2
    err = _error(capsys)
    assert err.count("\n") == 1 and "117" in err and "dataset.json" in err


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


def test_find_best_takes_nnunets_dash_c_as_in_the_deployment_guide():
    """#24 item 8: docs/deployment.md printed `find-best WORK -c ...`; nnU-Net spells it -c, segkit --configs."""
    assert build_parser().parse_args(["find-best", "W", "-c", "2d", "3d_fullres"]).configs == ["2d", "3d_fullres"]
    text = (Path(__file__).resolve().parents[2] / "docs" / "faq.md").read_text()
    assert "--batch" not in text, "the FAQ still recommends --batch, which does nothing"
