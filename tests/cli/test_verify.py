"""`segkit verify DATASET`: a one-line OK, or the table of problems with a summary on stderr and exit 2; --json."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from segkit.cli import main
from segkit.io.image import read_image, write_image
from segkit.phantom import PhantomSpec, generate_dataset
from segkit.verify import Problem, verify_dataset

SPEC = PhantomSpec(shape=(8, 12, 12))


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> Path:
    """A valid 3-case, 4-channel phantom with one test case (read-only)."""
    return generate_dataset(tmp_path_factory.mktemp("clean") / "Phantom", 3, "nnunet", spec=SPEC, num_test=1)


def test_a_clean_dataset_is_one_ok_line_and_its_json_says_what_was_checked(clean, tmp_path, capsys):
    report = tmp_path / "verify.json"
    assert main(["verify", str(clean), "--json", str(report)]) == 0
    captured = capsys.readouterr()
    assert captured.out == f"OK: {clean}: 3 training and 1 test case(s), 4 channel(s), no problems\n"
    assert captured.err == ""
    assert json.loads(report.read_text()) == {"dataset": str(clean), "ok": True, "num_training": 3, "num_test": 1,
                                              "problems": [], "notes": []}


def test_problems_are_a_table_on_stdout_a_count_on_stderr_and_exit_2(clean, tmp_path, capsys):
    root = Path(shutil.copytree(clean, tmp_path / "Phantom"))
    for case in ("phantom_001", "phantom_002"):   # two cases, one broken channel each
        path = root / "imagesTr" / f"{case}_0002.nii.gz"
        image = read_image(path)
        write_image(np.full_like(image.array, np.nan), image.geometry, path)
    report = tmp_path / "verify.json"
    assert main(["verify", str(root), "-j", "2", "--json", str(report)]) == 2
    captured = capsys.readouterr()
    rows = captured.out.splitlines()
    assert rows[0].split() == ["case", "file", "problem"]
    assert sum("NaN/Inf" in row for row in rows) == 2
    assert captured.err == f"segkit verify: 2 problem(s) in 2 case(s) of {root}\n"
    written = json.loads(report.read_text())
    assert written["ok"] is False and written["num_training"] == 3
    assert [Problem(**p) for p in written["problems"]] == verify_dataset(root)
