"""Fixtures of the `segkit convert` tests (tests/io/test_convert*.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from convert_data import make_sources


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> dict[str, Path]:
    """One source folder per layout (msd, brats2021, brats2023): 2 labelled cases and 1 unlabelled case."""
    return make_sources(tmp_path_factory.mktemp("sources"))


@pytest.fixture
def source_copy(sources, tmp_path):
    """A writable copy of one source folder, for tests that damage it."""
    return lambda layout: Path(shutil.copytree(sources[layout], tmp_path / f"src_{layout}"))
