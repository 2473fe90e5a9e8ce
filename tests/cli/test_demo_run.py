"""segkit demo: output-folder safety and the Dice table (the full run is the README's first command)."""

from __future__ import annotations

from segkit.cli.demo_run import MARKER, dice_table, prepare_output


def test_demo_reuses_its_own_folder(tmp_path) -> None:
    out = tmp_path / "demo"
    prepare_output(out)
    (out / "old_result.txt").write_text("stale")
    prepare_output(out)
    assert (out / MARKER).is_file() and not (out / "old_result.txt").exists()


def test_dice_table_lists_each_class() -> None:
    summary = {"mean": {"necrosis": {"dice": 0.5}, "edema": {"dice": 0.25}}, "foreground_mean": {"dice": 0.375}}
    table = dice_table(summary)
    assert "  necrosis  0.500" in table and "  edema     0.250" in table
