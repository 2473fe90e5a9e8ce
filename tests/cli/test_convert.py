"""`segkit convert SRC DEST`: the one-line summary, the format choices, --overwrite."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from convert_data import SPEC, convert_cli

from segkit.cli import main
from segkit.phantom import generate_dataset
from segkit.verify import verify_dataset


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> dict[str, Path]:
    """A BraTS 2023 source folder: 2 labelled cases and 1 unlabelled (validation) case (read-only)."""
    base = tmp_path_factory.mktemp("sources")
    return {"brats2023": generate_dataset(base / "brats2023", 2, "brats2023", spec=SPEC, num_test=1)}


def test_the_summary_names_the_case_counts_the_detected_format_and_the_destination(sources, tmp_path, capsys):
    dest = tmp_path / "out"
    code, out, err = convert_cli(capsys, sources["brats2023"], dest)
    assert code == 0 and err == ""
    dataset = json.loads((dest / "dataset.json").read_text())
    test_cases = {p.name.rsplit("_", 1)[0] for p in (dest / "imagesTs").iterdir()}
    assert out == (f"converted {dataset['numTraining']} training and {len(test_cases)} test case(s) from brats2023 "
                   f"into {dest}\n")
    assert dataset["numTraining"] == len(list((dest / "labelsTr").iterdir())) == 2 and len(test_cases) == 1


def test_an_unknown_format_is_a_usage_error_and_writes_nothing(sources, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["convert", str(sources["brats2023"]), str(tmp_path / "out"), "--format", "nifti"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'nifti'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_non_empty_destination_needs_overwrite(sources, tmp_path, capsys):
    dest = tmp_path / "out"
    (dest / "imagesTr").mkdir(parents=True)
    (dest / "imagesTr" / "stale_0000.nii.gz").write_bytes(b"old")
    (dest / "notes.txt").write_text("keep me")
    code, _, err = convert_cli(capsys, sources["brats2023"], dest)
    assert code == 2 and "--overwrite" in err and str(dest) in err
    code, _, _ = convert_cli(capsys, sources["brats2023"], dest, "--overwrite")
    assert code == 0
    assert not (dest / "imagesTr" / "stale_0000.nii.gz").exists() and (dest / "notes.txt").is_file()
    assert verify_dataset(dest) == []
