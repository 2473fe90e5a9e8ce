"""Sharding a batch: which cases a part takes."""

from __future__ import annotations

import pytest

from segkit.batch.sharding import resolve_part, select_part
from segkit.errors import UserError


def test_select_part_and_resolve_part():
    items = [f"c{i:02d}" for i in range(10)]
    parts = [select_part(items, 3, k) for k in range(3)]
    assert parts[1] == ["c01", "c04", "c07"]
    assert sorted(sum(parts, [])) == items
    assert resolve_part(None, None, {"RANK": "2", "WORLD_SIZE": "4"}) == (4, 2)
    assert resolve_part(3, 1, {"RANK": "2", "WORLD_SIZE": "4"}) == (3, 1)
    assert resolve_part(None, None, {}) == (1, 0)
    with pytest.raises(UserError):
        resolve_part(2, 2, {})
    with pytest.raises(UserError):
        resolve_part(None, 1, {})
