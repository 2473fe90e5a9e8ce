"""scripts/bench_suite.py: a default must raise the suite mean and lower no dataset beyond the seed spread."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
import bench_suite  # noqa: E402


def _rows(*values):
    return [{"held_out_mean_dice": v} for v in values]


def test_a_variant_that_lowers_one_dataset_beyond_the_spread_is_not_a_default():
    table = {"brain-lateral": {"today": bench_suite.summarise(_rows(0.70, 0.71, 0.69)),
                               "variant": bench_suite.summarise(_rows(0.80, 0.81, 0.79))},
             "brain-merged": {"today": bench_suite.summarise(_rows(0.80, 0.81, 0.80)),
                              "variant": bench_suite.summarise(_rows(0.75, 0.76, 0.75))}}
    assert table["brain-lateral"]["today"] == {"mean": 0.7, "spread": 0.02, "per_seed": [0.70, 0.71, 0.69]}
    verdict = bench_suite.verdict(table)
    assert verdict["suite_mean"]["variant"] > verdict["suite_mean"]["today"]      # the mean alone would say yes
    assert verdict["lower_beyond_spread"] == ["brain-merged"] and not verdict["becomes_default"]


def test_a_variant_within_the_spread_everywhere_and_better_on_average_is_a_default():
    table = {"a": {"today": bench_suite.summarise(_rows(0.70, 0.74)), "variant": bench_suite.summarise(_rows(0.78, 0.80))},
             "b": {"today": bench_suite.summarise(_rows(0.80, 0.84)), "variant": bench_suite.summarise(_rows(0.79, 0.83))}}
    verdict = bench_suite.verdict(table)
    assert verdict["lower_beyond_spread"] == [] and verdict["becomes_default"]


def test_fold_0_validates_on_the_last_training_case_and_never_sees_held_out_ones(tmp_path):
    for case in ("lung2_002", "lung2_001", "lung2_003"):
        (tmp_path / "imagesTr").mkdir(exist_ok=True)
        (tmp_path / "imagesTr" / f"{case}_0000.nii.gz").write_bytes(b"")
    (tmp_path / "heldout" / "images").mkdir(parents=True)
    (tmp_path / "heldout" / "images" / "lung1_0000.nii.gz").write_bytes(b"")
    assert bench_suite.split_of(tmp_path) == [{"train": ["lung2_001", "lung2_002"], "val": ["lung2_003"]}]
    assert set(bench_suite.DATASETS) >= {"brain-lateral", "brain-merged", "ct-abdomen", "lesion-lung-ct"}


# --- resume, refusal and the table of a partial suite (a fake run function: no training) ---

PROTOCOL = bench_suite.protocol_of(8.0, None, 1, 2, {"today": "75faa7f", "variant": "abc1234"}, [])


def _fake_run(dice: dict[str, float], calls: list, fail: set | None = None):
    """A run function returning a fixed held-out Dice per variant; raises for the cells in `fail`."""
    def run(cell, core):
        calls.append((cell, core))
        if fail and cell in fail:
            raise RuntimeError("killed mid-training")
        return {"dataset": cell[0], "variant": cell[1], "seed": cell[2], "core": core,
                "held_out_mean_dice": dice[cell[1]] + 0.001 * cell[2], "loadavg_after": "1.0 1.0 1.0"}
    return run


def test_a_rerun_with_the_same_protocol_runs_only_the_missing_cells_and_a_failed_one_is_retried(tmp_path):
    result_file = tmp_path / "result.json"
    cells = bench_suite.expected_cells(["brain-lateral", "ct-abdomen"], [0, 1])
    results = bench_suite.open_results(result_file, PROTOCOL, fresh=False)
    calls: list = []
    interrupted = ("ct-abdomen", "variant", 1)
    failures = bench_suite.run_cells(results, result_file, cells, _fake_run({"today": 0.6, "variant": 0.7}, calls,
                                     {interrupted}), 1, [0, 1])
    assert [f[0] for f in failures] == [interrupted] and len(calls) == 8
    stored = json.loads(result_file.read_text())
    assert len(stored["cells"]) == 7 and "ct-abdomen/variant/seed1" not in stored["cells"]   # never half-counted

    resumed = bench_suite.open_results(result_file, PROTOCOL, fresh=False)
    todo = bench_suite.missing_cells(resumed, cells)
    assert todo == [interrupted]
    calls.clear()
    assert bench_suite.run_cells(resumed, result_file, todo, _fake_run({"today": 0.6, "variant": 0.7}, calls),
                                 1, [0, 1]) == []
    assert [c[0] for c in calls] == [interrupted]
    summary = bench_suite.report(json.loads(result_file.read_text()), cells)
    assert summary["complete"] and summary["missing"] == []
    assert summary["table"]["ct-abdomen"]["variant"] == {"mean": 0.7005, "spread": 0.001, "per_seed": [0.7, 0.701]}
    assert summary["verdict"]["becomes_default"]


def test_another_protocol_is_refused_with_each_difference_named_unless_fresh(tmp_path):
    result_file = tmp_path / "result.json"
    results = bench_suite.open_results(result_file, PROTOCOL, fresh=False)
    bench_suite.run_cells(results, result_file, bench_suite.expected_cells(["ct-abdomen"], [0]),
                          _fake_run({"today": 0.6, "variant": 0.7}, []), 1, [0, 1])
    other = PROTOCOL | {"minutes": 1.0, "commits": {"today": "75faa7f", "variant": "def5678"}}
    with pytest.raises(bench_suite.SuiteError) as refused:
        bench_suite.open_results(result_file, other, fresh=False)
    message = str(refused.value)
    assert str(result_file) in message and "2 cells" in message and "--fresh" in message
    assert "minutes: 8.0 -> 1.0" in message and "def5678" in message and "threads" not in message
    assert json.loads(result_file.read_text())["protocol"] == PROTOCOL        # nothing overwritten

    fresh = bench_suite.open_results(result_file, other, fresh=True)
    assert fresh["cells"] == {} and fresh["protocol"] == other
    assert len(list(tmp_path.glob("result.json.replaced-*"))) == 1           # the old cells are kept aside


def test_the_command_line_refuses_another_protocol_with_exit_2_and_one_message(tmp_path, capsys):
    today = tmp_path / "today"
    (today / "segkit").mkdir(parents=True)
    (today / "segkit" / "__init__.py").write_text("")
    out = tmp_path / "out"
    out.mkdir()
    (out / "result.json").write_text(json.dumps({"protocol": PROTOCOL, "cells": {}, "prepared": []}))
    code = bench_suite.main(["--out", str(out), "--steps", "1", "2", "--today-root", str(today),
                             "--datasets", "ct-abdomen", "--seeds", "0"])
    error = capsys.readouterr().err
    assert code == 2 and error.count("\n") == 1 and "another protocol" in error and "steps: None -> [1, 2]" in error
    assert "Traceback" not in error


def test_the_table_of_a_partial_suite_names_the_missing_cells_and_judges_only_paired_datasets(tmp_path, capsys):
    result_file = tmp_path / "result.json"
    results = bench_suite.open_results(result_file, PROTOCOL, fresh=False)
    done = [("brain-lateral", "today", 0), ("brain-lateral", "variant", 0), ("ct-abdomen", "today", 0)]
    bench_suite.run_cells(results, result_file, done, _fake_run({"today": 0.6, "variant": 0.5}, []), 1, [0, 1])
    capsys.readouterr()
    code = bench_suite.main(["--out", str(tmp_path), "--table", "--markdown", "--datasets", "brain-lateral",
                             "ct-abdomen", "--seeds", "0"])
    printed = capsys.readouterr().out
    assert code == 0
    summary = json.loads(printed[:printed.index("\n}\n") + 2])
    assert summary["missing"] == ["ct-abdomen/variant/seed0"] and not summary["complete"]
    assert summary["verdict"]["datasets"] == ["brain-lateral"]              # ct-abdomen has no variant cell yet
    assert summary["verdict"]["suite_mean"] == {"today": 0.6, "variant": 0.5}
    assert "| ct-abdomen | 0.6 (0.6000) | missing (" not in printed and "| ct-abdomen | 0.6 (0.6000) | missing |" in printed
    assert "partial: 1 cells missing: ct-abdomen/variant/seed0" in printed and "Becomes a default: no" in printed


def test_side_by_side_cells_run_at_once_on_their_own_cores_which_swap_with_the_seed(tmp_path):
    result_file = tmp_path / "result.json"
    results = bench_suite.open_results(result_file, PROTOCOL, fresh=False)
    both_started = threading.Barrier(2, timeout=10)   # fails unless today and the variant run at the same time
    calls: list = []

    def run(cell, core):
        both_started.wait()
        return _fake_run({"today": 0.6, "variant": 0.7}, calls)(cell, core)

    cells = bench_suite.expected_cells(["ct-abdomen"], [0, 1])
    assert bench_suite.run_cells(results, result_file, cells, run, 2, [0, 1]) == []
    cores = {cell: core for cell, core in calls}
    assert cores[("ct-abdomen", "today", 0)] == 0 and cores[("ct-abdomen", "variant", 0)] == 1
    assert cores[("ct-abdomen", "today", 1)] == 1 and cores[("ct-abdomen", "variant", 1)] == 0
    assert json.loads(result_file.read_text())["cells"]["ct-abdomen/variant/seed1"]["core"] == 0
    assert bench_suite.cores_for(0, 1, [0, 1]) == {"today": None, "variant": None}   # sequential: unpinned


def test_parallel_runs_one_thread_per_training():
    assert bench_suite.parse_arguments(["--today-root", "x", "--parallel", "2"]).threads == 1
    with pytest.raises(SystemExit):
        bench_suite.parse_arguments(["--today-root", "x", "--parallel", "2", "--threads", "2"])


def test_a_stopped_suite_terminates_its_running_commands_and_starts_no_new_one(tmp_path):
    bench_real = sys.modules["bench_real"]
    outcome: list = []

    def run():
        try:
            bench_real._run(["sleep", "30"], dict(os.environ), tmp_path, None)
        except subprocess.CalledProcessError as error:
            outcome.append(error.returncode)

    worker = threading.Thread(target=run)
    worker.start()
    deadline = time.monotonic() + 10
    while not bench_real.RUNNING and time.monotonic() < deadline:
        time.sleep(0.01)
    try:
        bench_real.stop_running()
        worker.join(timeout=10)
        assert outcome == [-signal.SIGTERM] and not bench_real.RUNNING        # ended now, not after 30 s
        with pytest.raises(RuntimeError, match="stopping"):
            bench_real._run(["true"], dict(os.environ), tmp_path, None)
    finally:
        bench_real.STOPPING.clear()
