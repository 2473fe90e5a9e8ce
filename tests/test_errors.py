"""UserError: the message names the file when there is one."""

from __future__ import annotations

from pathlib import Path

from segkit.errors import UserError


def test_user_error_names_the_file_first_and_keeps_both_parts() -> None:
    err = UserError("is not valid JSON", Path("/data/plans.json"))
    assert str(err) == "/data/plans.json: is not valid JSON"
    assert err.path == "/data/plans.json" and err.message == "is not valid JSON"
    bare = UserError("--epochs must be positive")
    assert str(bare) == "--epochs must be positive" and bare.path is None
