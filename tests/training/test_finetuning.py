"""Fine-tuning's warm-up: a linear ramp from 1/N to 1 over N steps after its start, 1 elsewhere."""

from __future__ import annotations

import pytest

from segkit.training.finetuning import warmup_factor


def test_warmup_ramps_linearly_after_its_start_and_is_off_elsewhere() -> None:
    assert [warmup_factor(step, 10, 4) for step in range(9, 16)] == [1.0, 0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    assert warmup_factor(0, 0, 0) == 1.0 and warmup_factor(5, 0, -1) == 1.0
    assert warmup_factor(0, 0, 3) == pytest.approx(1 / 3)
