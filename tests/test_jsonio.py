"""Atomic writes (nothing half-written, plain-open permissions) and JSON reads that name the file."""

from __future__ import annotations

import os

import pytest

from segkit.errors import UserError
from segkit.jsonio import atomic_path, canonical_sha256, read_json, write_json


def test_write_then_read_round_trips_and_leaves_no_temp_file(tmp_path) -> None:
    path = tmp_path / "sub" / "plans.json"
    write_json(path, {"a": [1, 2.5], "b": "x"})
    assert read_json(path) == {"a": [1, 2.5], "b": "x"}
    assert sorted(p.name for p in path.parent.iterdir()) == ["plans.json"]
    mask = os.umask(0o022)
    os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~mask


def test_a_failed_write_keeps_the_old_file_and_removes_the_temp(tmp_path) -> None:
    path = tmp_path / "report.json"
    write_json(path, {"old": True})
    with pytest.raises(RuntimeError), atomic_path(path) as tmp:
        tmp.write_text("half")
        raise RuntimeError("disk full")
    assert read_json(path) == {"old": True}
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]


def test_missing_or_malformed_json_is_a_user_error_naming_the_file(tmp_path) -> None:
    with pytest.raises(UserError, match="dataset.json not found") as err:
        read_json(tmp_path / "dataset.json", "dataset.json")
    assert err.value.path == str(tmp_path / "dataset.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(UserError, match="JSON file is not valid JSON") as err:
        read_json(bad)
    assert err.value.path == str(bad)


def test_canonical_digest_ignores_key_order_and_sees_content() -> None:
    assert canonical_sha256({"a": 1, "b": [1, 2]}) == canonical_sha256({"b": [1, 2], "a": 1})
    assert canonical_sha256({"a": 1, "b": [1, 2]}) != canonical_sha256({"a": 1, "b": [2, 1]})
    assert len(canonical_sha256({})) == 64
