"""uncertainty_calibration.json's owner: written with its required keys, read back checked."""

from __future__ import annotations

import json

import pytest

from segkit.errors import UserError
from segkit.models.calibration import CALIBRATION_FORMAT, read_calibration, write_calibration

RECORD = {"threshold": 0.31, "score": "mean_entropy", "target": "dice < 0.8", "quality": {"auroc": 0.9},
          "num_cases": 12}


def test_written_calibration_reads_back_with_its_format(tmp_path) -> None:
    path = tmp_path / "uncertainty_calibration.json"
    assert read_calibration(path) is None
    write_calibration(path, RECORD)
    assert read_calibration(path) == {"format": CALIBRATION_FORMAT, **RECORD}
    with pytest.raises(ValueError, match=r"lacks \['threshold'\]"):
        write_calibration(tmp_path / "other.json", {k: v for k, v in RECORD.items() if k != "threshold"})
    assert not (tmp_path / "other.json").exists()


def test_incomplete_or_foreign_files_are_user_errors_naming_the_file(tmp_path) -> None:
    path = tmp_path / "uncertainty_calibration.json"
    path.write_text(json.dumps({"format": CALIBRATION_FORMAT, "threshold": 0.3}))
    with pytest.raises(UserError, match="lacks score, target, quality, num_cases") as err:
        read_calibration(path)
    assert err.value.path == str(path)
    path.write_text(json.dumps({**RECORD, "format": "segkit-uncertainty-calibration-0"}))
    with pytest.raises(UserError, match="is not 'segkit-uncertainty-calibration-1'"):
        read_calibration(path)
