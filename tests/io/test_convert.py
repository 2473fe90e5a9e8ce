"""`segkit convert` (segkit.io.convert): the source format detected, a destination inside the source refused."""

from __future__ import annotations

import pytest
from convert_data import SPEC, assert_fails

from segkit.errors import UserError
from segkit.io.convert import detect_format
from segkit.phantom import generate_dataset


def test_auto_detection(sources, tmp_path):
    assert {layout: detect_format(path) for layout, path in sources.items()} == \
        {"msd": "msd", "brats2021": "brats2021", "brats2023": "brats2023"}
    nnunet = generate_dataset(tmp_path / "nn", 1, "nnunet", spec=SPEC)
    with pytest.raises(UserError, match="already in the nnU-Net"):
        detect_format(nnunet)
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="cannot detect"):
        detect_format(tmp_path / "empty")


def test_destination_inside_source_is_refused(source_copy, capsys):
    source = source_copy("brats2021")
    assert_fails(capsys, source, source / "converted", "overlaps the source", "converted")
