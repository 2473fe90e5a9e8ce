"""The tiny phantom planned once for tests/plans/ (every configuration)."""

from __future__ import annotations

from pathlib import Path

import pytest

from segkit.planning.run import plan_and_write


@pytest.fixture(scope="session")
def planned(tiny_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    """The tiny phantom planned with every configuration."""
    work = tmp_path_factory.mktemp("plans_work")
    plans, work, _ = plan_and_write(tiny_dataset, work, tradeoff=False)
    return plans, work
