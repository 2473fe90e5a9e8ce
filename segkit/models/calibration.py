"""uncertainty_calibration.json: a model's review threshold for the uncertainty score (owner of the format).

Written by `segkit calibrate-uncertainty` (`segkit.evaluation.uncertainty_calibration`) beside a
configuration's plans as ``models/<config>/uncertainty_calibration.json``; packaged with the
model (`segkit.models.package`); read by `segkit.inference.resolve` so `segkit predict
--uncertainty` flags cases whose score is at or above ``threshold``. Required keys:
``format``, ``threshold``, ``score`` (what was scored), ``target`` (what "low Dice" meant),
``quality`` (AUROC, precision, recall, ...) and ``num_cases``.
"""

from __future__ import annotations

from pathlib import Path

from segkit.errors import UserError
from segkit.jsonio import read_json, write_json

CALIBRATION_FORMAT = "segkit-uncertainty-calibration-1"
CALIBRATION_REQUIRED_KEYS = ("format", "threshold", "score", "target", "quality", "num_cases")


def write_calibration(path: str | Path, calibration: dict) -> Path:
    """Write uncertainty_calibration.json atomically, checked for its required keys."""
    data = {"format": CALIBRATION_FORMAT, **calibration}
    missing = [key for key in CALIBRATION_REQUIRED_KEYS if key not in data]
    if missing:
        raise ValueError(f"calibration lacks {missing}")
    write_json(path, data)
    return Path(path)


def read_calibration(path: str | Path) -> dict | None:
    """The review threshold's calibration of a model folder, or None when the model has none."""
    path = Path(path)
    if not path.is_file():
        return None
    data = read_json(path, "uncertainty calibration")
    missing = [key for key in CALIBRATION_REQUIRED_KEYS if not isinstance(data, dict) or key not in data]
    if missing:
        raise UserError(f"not a segkit uncertainty calibration (lacks {', '.join(missing)})", path)
    if data["format"] != CALIBRATION_FORMAT:
        raise UserError(f"uncertainty calibration format {data['format']!r} is not {CALIBRATION_FORMAT!r}", path)
    return data
