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


def test_final_message_says_how_good_the_model_is_or_that_it_was_not_measured():
    work = Path("W")
    sampled = quality_message({"best_val_mean_dice": 0.95, "validation": {"scope": "sampled", "fraction": 0.02}},
                              None, work)
    assert "not measured on whole cases" in sampled and "sampled" in sampled and "find-best W --predict-missing" in sampled
    assert "0.4600 on the fold's 5 whole validation case(s)" in quality_message(
        {"best_val_mean_dice": 0.95, "validation": {"scope": "sampled", "fraction": 0.02}}, (0.46, 5), work)
    full = quality_message({"best_val_mean_dice": 0.8, "validation": {"scope": "full"}}, None, work)
    assert "0.8000 on the fold's whole validation cases" in full


@pytest.mark.slow
def test_budget_cut_is_not_early_stopping_and_step_share_stays_a_share_after_resume(prepared, tmp_path):
    dataset, work = copy_work(*prepared, tmp_path)
    fold = work / "models" / "3d_fullres" / "fold_0"
    common = ["train", str(dataset), "--work-dir", str(work), "-f", "0", "--no-fit", "--quiet",
              "--num-workers", "0", "--threads", "1"]
    log = tmp_path / "log"
    assert _segkit([*common, "--time-budget", "0.1"], log) == 0, log.read_text()
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
