"""--backend auto: the decision needs the faster backend to agree with torch."""

from __future__ import annotations

import importlib.util

import pytest

from segkit.inference import backend_choice

pytestmark = pytest.mark.skipif(importlib.util.find_spec("onnxruntime") is None
                                or importlib.util.find_spec("onnx") is None,
                                reason="onnx / onnxruntime not installed (pip install 'segkit-revmb[onnx]')")


def test_auto_decision_needs_speed_and_accuracy():
    """A backend is chosen only when >= MIN_SPEEDUP faster and as accurate; else torch."""
    def record(seconds: float, agreement: float, difference: float) -> dict:
        return {"results": {"torch": {"seconds": 1.0},
                            "onnxruntime": {"seconds": seconds, "agreement": agreement,
                                            "max_abs_logit_difference": difference}}}

    assert backend_choice.decide(record(0.5, 1.0, 1e-5))[0] == "onnxruntime"
    assert backend_choice.decide(record(0.95, 1.0, 1e-5))[0] == "torch"          # not faster enough
    assert backend_choice.decide(record(0.5, 0.99, 0.3))[0] == "torch"           # not as accurate
    assert backend_choice.decide(record(0.5, 0.9998, 5e-5))[0] == "onnxruntime"  # ties only
