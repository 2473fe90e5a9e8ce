"""Dataset arguments as nnU-Net users type them: a folder, `-d 1`, `Dataset001_Name`, looked up in the raw roots."""

from __future__ import annotations

from pathlib import Path

import pytest

from segkit.cli import main
from segkit.cli.datasets import resolve_dataset
from segkit.errors import UserError


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
    err = capsys.readouterr().err
    assert "Dataset001_Liver" in err and "dataset.json" in err   # found; then its (absent) dataset.json
