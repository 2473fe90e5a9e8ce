"""`segkit plan`: plans.json and fingerprint.json written; a bad dataset is one message and exit 2."""

from __future__ import annotations

import json

from segkit.cli import main


def test_plan_cli_writes_plans_and_fingerprint(tiny_dataset, tmp_path, capsys) -> None:
    work = tmp_path / "work"
    assert main(["plan", str(tiny_dataset), "--work-dir", str(work), "--network", "unet"]) == 0
    plans = json.loads((work / "plans.json").read_text())
    assert plans["schema_version"] == 1
    assert plans["configurations"]["3d_fullres"]["target_spacing"] == [3.0, 1.5, 1.5]
    assert (work / "fingerprint.json").is_file()
    assert "3d_fullres" in capsys.readouterr().out


def test_plan_cli_bad_dataset_exits_2(tmp_path, capsys) -> None:
    assert main(["plan", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert "missing" in err and "Traceback" not in err
