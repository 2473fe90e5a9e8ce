"""find_best.json: find-best's choice (configurations and post-processing), its one owner.

Written by `segkit find-best` (`segkit.evaluation.find_best`); read when a work dir is predicted,
packaged or resolved (`segkit.models.choice`).
"""

from __future__ import annotations

from pathlib import Path

from segkit.errors import UserError
from segkit.jsonio import read_json, write_json


def read_find_best(path: Path) -> dict:
    """find_best.json (the single reader; written by write_find_best); UserError naming the file."""
    data = read_json(path, "find_best.json")
    if not isinstance(data, dict):
        raise UserError("find_best.json must hold a JSON object", path)
    return data


def write_find_best(path: Path, result: dict) -> None:
    """Write find_best.json atomically."""
    write_json(path, result)
