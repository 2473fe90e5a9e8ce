"""`segkit pull`: its arguments checked before anything starts."""

from __future__ import annotations

import pytest

from segkit.cli import main

pytest.importorskip("pynetdicom", reason="the pacs extra (pynetdicom) is not installed")


def test_bad_date_ranges_are_user_errors(tmp_path, capsys):
    assert main(["pull", "--config", str(tmp_path / "missing.toml"), "--dates", "2026-01-01"]) == 2
    assert "--dates '2026-01-01' must be YYYYMMDD" in capsys.readouterr().err
