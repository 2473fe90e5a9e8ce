"""find_best.json: its one writer and reader."""

from __future__ import annotations

import pytest

from segkit.errors import UserError
from segkit.models.find_best import read_find_best, write_find_best


def test_find_best_json_has_one_reader_and_writer(tmp_path):
    path = tmp_path / "find_best.json"
    write_find_best(path, {"best": {"members": ["2d"]}})
    assert read_find_best(path) == {"best": {"members": ["2d"]}}
    path.write_text("[1, 2]")
    with pytest.raises(UserError, match="must hold a JSON object") as err:
        read_find_best(path)
    assert err.value.path == str(path)
