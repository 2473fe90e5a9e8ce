"""What `segkit train` tells while it runs (#24 items 5-7): one line per epoch off a terminal, no carriage
returns in log files, validation Dice marked sampled/full, an honest final message, truthful schedule.json."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from training_data import copy_work, make_work_dir

from segkit.cli.train import quality_message
from segkit.training.trainer import epoch_line

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    return make_work_dir(tmp_path_factory.mktemp("train_output"))


def _segkit(args: list[str], log: Path) -> int:
    """Run the CLI in a subprocess with stdout and stderr into a file (not a terminal), as `segkit ... > log 2>&1`."""
    env = os.environ | {"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    with open(log, "ab") as handle:
        return subprocess.run([sys.executable, "-m", "segkit", *args], stdout=handle, stderr=subprocess.STDOUT,
                              env=env, timeout=600).returncode


def test_log_file_gets_one_line_per_epoch_and_no_carriage_return(prepared, tmp_path):
    dataset, work = copy_work(*prepared, tmp_path)
    log = tmp_path / "train.log"
    assert _segkit(["train", str(dataset), "--work-dir", str(work), "-f", "0", "--epochs", "3",
                    "--iterations-per-epoch", "2", "--validate-every", "2", "--num-workers", "0", "--threads", "1",
                    "--predict-validation"], log) == 0
    assert _segkit(["predict", "-i", str(dataset / "imagesTr"), "-o", str(tmp_path / "pred"), "-m",
                    str(work / "models" / "3d_fullres"), "-f", "0", "--device", "cpu", "--no-tta"], log) == 0
    raw = log.read_bytes()
    assert b"\r" not in raw, "a progress bar wrote carriage returns into the log file"
    text = raw.decode()
    epochs = [line for line in text.splitlines() if line.startswith("epoch ")]
    assert [line.split(":")[0] for line in epochs] == ["epoch 1/3", "epoch 2/3", "epoch 3/3"]
    assert all("loss " in line and " s, " in line and "steps/s" in line for line in epochs)
    assert "not validated this epoch" in epochs[0] and "(full cases)" in epochs[1] and "(full cases)" in epochs[2]
    quality = [line for line in text.splitlines() if line.startswith("model quality:")]
    assert len(quality) == 1 and "whole validation case(s)" in quality[0]
    for name in ("log.jsonl", "schedule.json"):
        assert b"\r" not in (work / "models" / "3d_fullres" / "fold_0" / name).read_bytes()


def test_epoch_line_marks_the_validation_dice_sampled_or_full():
    base = {"epoch": 4, "train_loss": 0.51234, "epoch_time_s": 2.0}
    sampled = epoch_line(base | {"val_mean_dice": 0.93, "val_scope": "sampled", "val_fraction": 0.02}, 10, 8)
    assert sampled == ("epoch 5/10: loss 0.5123, val Dice 0.9300 (sampled: 2% of each case, near the structures), "
                       "2.0 s, 4.00 steps/s")
    assert "val Dice 0.7000 (full cases)" in epoch_line(base | {"val_mean_dice": 0.7, "val_scope": "full"}, 10, 8)
    assert "not validated this epoch" in epoch_line(base, 10, 8)


def test_final_message_says_how_good_the_model_is_or_that_it_was_not_measured():
    work = Path("W")
    sampled = quality_message({"best_val_mean_dice": 0.95, "validation": {"scope": "sampled", "fraction": 0.02}},
                              None, work)
    assert "not measured on whole cases" in sampled and "sampled" in sampled and "find-best W --predict-missing" in sampled
    assert "0.4600 on the fold's 5 whole validation case(s)" in quality_message(
        {"best_val_mean_dice": 0.95, "validation": {"scope": "sampled", "fraction": 0.02}}, (0.46, 5), work)
    full = quality_message({"best_val_mean_dice": 0.8, "validation": {"scope": "full"}}, None, work)
    assert "0.8000 on the fold's whole validation cases" in full


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


@pytest.mark.slow
def test_budget_cut_is_not_early_stopping_and_step_share_stays_a_share_after_resume(prepared, tmp_path):
    dataset, work = copy_work(*prepared, tmp_path)
    fold = work / "models" / "3d_fullres" / "fold_0"
    common = ["train", str(dataset), "--work-dir", str(work), "-f", "0", "--no-fit", "--quiet",
              "--num-workers", "0", "--threads", "1"]
    log = tmp_path / "log"
    assert _segkit([*common, "--time-budget", "0.2"], log) == 0, log.read_text()
    cut = json.loads((fold / "schedule.json").read_text())["final"]
    assert cut["stopped_early"] is False and cut["stopped_by"] == "time_budget", cut
    shutil.rmtree(fold)
    assert _segkit([*common, "--epochs", "1", "--iterations-per-epoch", "60"], log) == 0, log.read_text()
    first = json.loads((fold / "schedule.json").read_text())["final"]
    assert first["stopped_by"] == "epochs" and first["step_seconds"] >= 0.4   # the old formula would be off by that
    assert _segkit([*common, "--resume", "--epochs", "2", "--time-budget", "1"], log) == 0, log.read_text()
    second = json.loads((fold / "schedule.json").read_text())["final"]
    assert second["steps"] > first["steps"] and second["stopped_early"] is False
    # the share is this command's step seconds over this command's wall time (step_seconds is cumulative)
    assert 0 < second["step_share"] <= 1, second
    assert second["step_share"] * second["elapsed_s"] == pytest.approx(second["step_seconds"] - first["step_seconds"],
                                                                        abs=0.15)
