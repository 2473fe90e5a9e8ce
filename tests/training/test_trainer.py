"""The trainer's epoch line: validation Dice marked sampled or full."""

from __future__ import annotations

from segkit.training.trainer import epoch_line


def test_epoch_line_marks_the_validation_dice_sampled_or_full():
    base = {"epoch": 4, "train_loss": 0.51234, "epoch_time_s": 2.0}
    sampled = epoch_line(base | {"val_mean_dice": 0.93, "val_scope": "sampled", "val_fraction": 0.02}, 10, 8)
    assert sampled == ("epoch 5/10: loss 0.5123, val Dice 0.9300 (sampled: 2% of each case, near the structures), "
                       "2.0 s, 4.00 steps/s")
    assert "val Dice 0.7000 (full cases)" in epoch_line(base | {"val_mean_dice": 0.7, "val_scope": "full"}, 10, 8)
    assert "not validated this epoch" in epoch_line(base, 10, 8)
