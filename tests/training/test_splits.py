"""splits.json's owner: seeded k-fold splits made once, reused, and checked for their shape."""

from __future__ import annotations

import json

import pytest

from segkit import workdir
from segkit.errors import UserError
from segkit.training.splits import load_or_make_splits, make_splits, read_splits


def test_splits_owner(tmp_path):
    cases = [f"c{i}" for i in range(7)]
    path = workdir.splits_path(tmp_path)
    splits = load_or_make_splits(path, cases, write=True)
    assert splits == make_splits(cases) and read_splits(path) == splits
    assert sorted(c for s in splits for c in s["val"]) == sorted(cases)
    path.write_text(json.dumps([{"train": ["c1"]}]))
    with pytest.raises(UserError, match="list of folds") as err:
        read_splits(path)
    assert str(err.value.path) == str(path)
