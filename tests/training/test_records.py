"""Training records: the progress picture marks every validation point."""

from __future__ import annotations

import pytest


def test_progress_png_marks_every_validation_point(tmp_path, monkeypatch):
    """Validation every 3rd epoch, and a 1-epoch run: every point is drawn with a marker."""
    import matplotlib.axes

    from segkit.training.records import plot_progress

    calls: list[tuple[list, dict]] = []
    original = matplotlib.axes.Axes.plot

    def spy(self, *args, **kwargs):
        calls.append((list(args[1]) if len(args) > 1 else [], kwargs))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "plot", spy)
    records = [{"epoch": e, "train_loss": 1.0 - e / 10, "lr": 0.01} | (
        {"val_loss": 0.5, "val_mean_dice": 0.1 * e, "val_scope": "full"} if e % 3 == 2 else {}) for e in range(9)]
    assert plot_progress(records, tmp_path / "a.png")
    dice = [c for c in calls if str(c[1].get("label", "")).startswith("val mean Dice")]
    assert len(dice) == 1 and dice[0][0] == pytest.approx([0.2, 0.5, 0.8]) and dice[0][1]["marker"]
    assert all(c[1].get("marker") for c in calls)
    calls.clear()
    assert plot_progress([{"epoch": 0, "train_loss": 0.9, "lr": 0.01, "val_loss": 0.8, "val_mean_dice": 0.3,
                           "val_scope": "sampled"}], tmp_path / "one.png")
    assert {str(c[1]["label"]) for c in calls} >= {"train loss", "val loss", "val mean Dice (sampled)"}
    assert all(len(c[0]) == 1 and c[1].get("marker") for c in calls)
