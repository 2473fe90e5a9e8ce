"""TrainRequest: frozen, nnU-Net's defaults, the budget in seconds."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from segkit.training.request import TrainRequest


def test_defaults_budget_and_immutability() -> None:
    request = TrainRequest(Path("Dataset001"))
    assert (request.configuration, request.fold, request.recipe, request.precision) == ("3d_fullres", "0", "auto",
                                                                                        "auto")
    assert request.time_budget_s is None
    assert TrainRequest(Path("D"), time_budget_min=2.5).time_budget_s == 150.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        request.fold = "1"   # type: ignore[misc]
    assert TrainRequest(Path("D")).recipe_overrides == {} and TrainRequest(Path("D")).recipe_overrides is not \
        request.recipe_overrides
