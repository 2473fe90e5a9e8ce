"""`segkit train`: bad input (exit 2, one line), a tiny run's artefacts, and SIGKILL + --resume exactness."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from training_data import copy_work, make_work_dir

from segkit.cli import main as segkit_main

TINY_RUN = ["--epochs", "2", "--iterations-per-epoch", "2", "--quiet", "--num-workers", "0", "--threads", "1"]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    return make_work_dir(tmp_path_factory.mktemp("train"))


def _train(dataset, work, *extra):
    return segkit_main(["train", str(dataset), "--work-dir", str(work), *extra])


def test_tiny_run_writes_model_dir(prepared, tmp_path):
    dataset, work = copy_work(*prepared, tmp_path)
    assert _train(dataset, work, "-f", "1", *TINY_RUN) == 0
    models = work / "models" / "3d_fullres"
    splits = json.loads((models / "splits.json").read_text())
    assert len(splits) == 5 and sorted(splits[1]["val"] + splits[1]["train"]) == sorted(
        p.name[:-5] for p in (work / "preprocessed" / "3d_fullres").glob("*.json"))
    assert json.loads((models / "plans.json").read_text())["configurations"]["3d_fullres"]["patch_size"] == [8, 16, 16]
    assert (models / "dataset.json").is_file()
    fold = models / "fold_1"
    log = [json.loads(line) for line in (fold / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [0, 1]
    assert set(log[0]["val_dice"]) == {"necrosis", "edema", "enhancing"}
    assert log[1]["lr"] < log[0]["lr"] and log[0]["peak_memory_bytes"] > 0
    final = torch.load(fold / "checkpoint_final.pt", weights_only=True)
    assert final["format"] == "segkit-checkpoint-1" and final["epoch"] == 1 and final["step"] == 4
    assert (fold / "checkpoint_best.pt").is_file() and (fold / "progress.png").stat().st_size > 1000
    assert json.loads((fold / "schedule.json").read_text())["total_steps"] == 4


def _error_line(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0]
    return err[0]


def test_bad_inputs_exit_2_with_one_line(prepared, tmp_path, capsys):
    dataset, work = copy_work(*prepared, tmp_path)
    assert _train(dataset, tmp_path / "nowhere", *TINY_RUN) == 2
    line = _error_line(capsys)
    assert "plans.json not found" in line and "run `segkit plan" in line
    assert _train(dataset, work, "-c", "3d_hugeres", *TINY_RUN) == 2
    assert "unknown configuration '3d_hugeres'" in _error_line(capsys)
    assert _train(dataset, work, "-f", "5", *TINY_RUN) == 2
    assert "fold 5 is out of range" in _error_line(capsys)
    assert _train(dataset, work, "-f", "all", "--resume", *TINY_RUN) == 2
    assert "no checkpoint_latest.pt" in _error_line(capsys)
    splits = work / "models" / "3d_fullres" / "splits.json"
    splits.parent.mkdir(parents=True)
    splits.write_text(json.dumps([{"train": ["phantom_001"], "val": ["phantom_002"]}]))
    assert _train(dataset, work, "-f", "1", *TINY_RUN) == 2
    assert "splits.json has 1 folds" in _error_line(capsys)
    splits.unlink()
    victim = sorted((work / "preprocessed" / "3d_fullres").glob("*_seg.npy"))[0]
    victim.write_bytes(victim.read_bytes()[:100])
    assert _train(dataset, work, "-f", "all", *TINY_RUN) == 2
    line = _error_line(capsys)
    assert victim.name in line and "corrupt preprocessed file" in line
    assert not (work / "models" / "3d_fullres" / "fold_all").exists()


def test_resume_with_checkpoint_from_another_plan_exits_2(prepared, tmp_path, capsys):
    dataset, work = copy_work(*prepared, tmp_path)
    assert _train(dataset, work, "-f", "all", *TINY_RUN) == 0
    plans = json.loads((work / "plans.json").read_text())
    plans["configurations"]["3d_fullres"]["patch_size"] = [8, 8, 8]
    (work / "plans.json").write_text(json.dumps(plans))
    capsys.readouterr()
    assert _train(dataset, work, "-f", "all", "--resume", *TINY_RUN) == 2
    assert "different plan (plans_sha256 mismatch)" in _error_line(capsys)


def _command(dataset, work, epochs):
    return [sys.executable, "-m", "segkit", "train", str(dataset), "--work-dir", str(work), "-f", "all",
            "--epochs", str(epochs), "--iterations-per-epoch", "2", "--quiet", "--num-workers", "1",
            "--threads", "1", "--deterministic", "--seed", "3"]


def _saved_epoch(path: Path) -> int:
    try:
        return torch.load(path, weights_only=True)["epoch"]
    except (FileNotFoundError, RuntimeError, EOFError):
        return -1


@pytest.mark.slow
def test_sigkill_then_resume_equals_uninterrupted_run(prepared, tmp_path):
    epochs = 5
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    ref_dataset, ref_work = copy_work(*prepared, tmp_path / "ref")
    subprocess.run(_command(ref_dataset, ref_work, epochs), check=True, env=env, cwd=tmp_path)
    dataset, work = copy_work(*prepared, tmp_path / "killed")
    latest = work / "models" / "3d_fullres" / "fold_all" / "checkpoint_latest.pt"
    process = subprocess.Popen(_command(dataset, work, epochs), env=env, cwd=tmp_path)
    while _saved_epoch(latest) < 1 and process.poll() is None:
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    killed_at = _saved_epoch(latest)
    assert 1 <= killed_at < epochs - 1, "the run finished before it could be killed"
    subprocess.run(_command(dataset, work, epochs) + ["--resume"], check=True, env=env, cwd=tmp_path)
    fold, ref_fold = latest.parent, ref_work / "models" / "3d_fullres" / "fold_all"
    log = [json.loads(line) for line in (fold / "log.jsonl").read_text().splitlines()]
    ref_log = [json.loads(line) for line in (ref_fold / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == list(range(epochs))
    assert [r["step"] for r in log] == [r["step"] for r in ref_log] == [2 * (e + 1) for e in range(epochs)]
    assert [r["lr"] for r in log] == [r["lr"] for r in ref_log]
    final = torch.load(fold / "checkpoint_final.pt", weights_only=True)
    ref_final = torch.load(ref_fold / "checkpoint_final.pt", weights_only=True)
    for key, value in ref_final["network_state"].items():
        assert torch.equal(final["network_state"][key], value), key
    momentum = [s["momentum_buffer"] for s in final["optimizer_state"]["state"].values()]
    ref_momentum = [s["momentum_buffer"] for s in ref_final["optimizer_state"]["state"].values()]
    assert all(torch.equal(a, b) for a, b in zip(momentum, ref_momentum))
    assert np.isclose(log[-1]["train_loss"], ref_log[-1]["train_loss"])


@pytest.mark.slow
def test_time_budget_run_records_its_step_share_and_validates_at_the_end(prepared, tmp_path):
    """A 12 s budget: the fitted schedule (validation mode, given_up), final.step_share, step_seconds saved."""
    dataset, work = copy_work(*prepared, tmp_path)
    started = time.monotonic()
    assert _train(dataset, work, "-f", "0", "--time-budget", "0.2", "--no-fit", "--augment", "fast", "--quiet",
                  "--num-workers", "0", "--threads", "1") == 0
    wall = time.monotonic() - started
    fold = work / "models" / "3d_fullres" / "fold_0"
    schedule = json.loads((fold / "schedule.json").read_text())
    assert schedule["source"] == "time_budget" and schedule["validation"] in ("full", "sampled", "end")
    assert schedule["validation_s"] > 0 and isinstance(schedule["given_up"], list)
    assert schedule["recipe"]["augment"] == "fast"
    final = schedule["final"]
    assert 0 < final["step_share"] <= 1 and final["step_seconds"] > 0 and final["steps"] >= 10
    log = [json.loads(line) for line in (fold / "log.jsonl").read_text().splitlines()]
    assert "val_dice" in log[-1]                       # the last epoch is always validated
    assert all(("val_dice" in r) == (r is log[-1] or (r["epoch"] + 1) % schedule["validate_every"] == 0)
               for r in log if schedule["validation"] != "end")
    checkpoint = torch.load(fold / "checkpoint_final.pt", weights_only=True)
    assert checkpoint["step_seconds"] == pytest.approx(final["step_seconds"], abs=0.1)
    assert wall < 12 + 15                              # the budget holds (start-up slack for a loaded machine)


def test_a_finished_fold_is_not_overwritten_without_overwrite(prepared, tmp_path, capsys):
    """#24 item 11: training a finished fold again replaced its model without a word."""
    dataset, work = copy_work(*prepared, tmp_path)
    assert _train(dataset, work, "-f", "2", *TINY_RUN) == 0
    final = work / "models" / "3d_fullres" / "fold_2" / "checkpoint_final.pt"
    before = final.read_bytes()
    capsys.readouterr()
    assert _train(dataset, work, "-f", "2", *TINY_RUN) == 2
    line = _error_line(capsys)
    assert "already trained" in line and "--resume" in line and "--overwrite" in line
    assert final.read_bytes() == before
    assert _train(dataset, work, "-f", "2", *TINY_RUN, "--overwrite", "--seed", "3") == 0
    assert final.read_bytes() != before
