"""The plan stage end to end (segkit.planning.run): the budget and device planned for, the network 'auto' means,
fingerprint.json reused only while it describes the same cases, plans.json and the summary written."""

from __future__ import annotations

import json
import shutil

import pytest

from segkit.errors import UserError
from segkit.io.dataset import load_dataset
from segkit.planning.planner import GIB
from segkit.planning.run import budget_and_device, load_or_compute_fingerprint, plan_and_write, resolve_network
from segkit.workdir import fingerprint_path


@pytest.mark.parametrize("detected, gpu_memory, device, expected", [
    ((8 * GIB, "cpu"), None, "auto", (8 * GIB, "cpu")),
    ((8 * GIB, "cpu"), 12, "cuda", (12 * GIB, "cuda")),                  # a GPU planned for on a CPU-only machine
    ((8 * GIB, "cpu"), 4, "auto", (4 * GIB, "cpu")),
    ((24 * GIB, "cuda:L4"), None, "auto", (24 * GIB, "cuda:L4")),       # the GPU found, with its memory
    ((24 * GIB, "cuda:L4"), None, "cpu", (8 * GIB, "cpu")),             # this CPU even with a GPU here
    ((24 * GIB, "cuda:L4"), 16, "cuda", (16 * GIB, "cuda:L4")),
])
def test_budget_and_device(monkeypatch, detected, gpu_memory, device, expected):
    monkeypatch.setattr("segkit.planning.run.detect_budget", lambda: detected)
    assert budget_and_device(gpu_memory, device) == expected


@pytest.mark.parametrize("gpu_memory, device, words", [(None, "tpu", "--device must be one of auto, cpu, cuda"),
                                                       (0, "auto", "--gpu-memory must be positive"),
                                                       (None, "cuda", "needs --gpu-memory GB")])
def test_budget_mistakes_are_user_errors(monkeypatch, gpu_memory, device, words):
    monkeypatch.setattr("segkit.planning.run.detect_budget", lambda: (8 * GIB, "cpu"))
    with pytest.raises(UserError, match=words):
        budget_and_device(gpu_memory, device)


def test_an_unknown_network_names_the_choices():
    with pytest.raises(UserError, match="unknown network family 'vnet'; choose from auto, unet"):
        resolve_network("vnet", planning_for_cpu=True)


def test_the_fingerprint_is_reused_until_the_cases_change_or_force(tiny_dataset, tmp_path):
    dataset = shutil.copytree(tiny_dataset, tmp_path / "Phantom")
    work = tmp_path / "work"
    first = load_or_compute_fingerprint(load_dataset(dataset), work, 1, force=False)
    path = fingerprint_path(work)
    stored = json.loads(path.read_text())
    stored["marker"] = "kept"                         # proves the file, not a recomputation, came back
    path.write_text(json.dumps(stored))
    assert load_or_compute_fingerprint(load_dataset(dataset), work, 1, force=False)["marker"] == "kept"
    assert "marker" not in load_or_compute_fingerprint(load_dataset(dataset), work, 1, force=True)
    for image in (dataset / "imagesTr").glob("phantom_004_*"):
        image.unlink()
    (dataset / "labelsTr" / "phantom_004.nii.gz").unlink()
    again = load_or_compute_fingerprint(load_dataset(dataset), work, 1, force=False)
    assert [c["case_id"] for c in again["cases"]] == [c["case_id"] for c in first["cases"]][:3]
    assert json.loads(path.read_text())["cases"] == again["cases"]


def test_plan_and_write_writes_both_files_and_a_summary_with_the_tradeoff(tiny_dataset, tmp_path, monkeypatch):
    monkeypatch.setattr("segkit.planning.run.detect_budget", lambda: (8 * GIB, "cpu"))
    plans, work, summary = plan_and_write(tiny_dataset, work_dir=tmp_path / "work", configurations=("3d_fullres",))
    assert work == tmp_path / "work" and json.loads((work / "plans.json").read_text()) == plans
    assert fingerprint_path(work).is_file()
    assert list(plans["configurations"]) == ["3d_fullres"]
    assert plans["configurations"]["3d_fullres"]["architecture"]["family"] == "unet"   # auto on this CPU
    assert summary.startswith(f"dataset {plans['dataset_name']}:") and "3d_fullres" in summary
    _, _, without = plan_and_write(tiny_dataset, work_dir=tmp_path / "work", configurations=("3d_fullres",),
                                   tradeoff=False)
    assert summary.startswith(without) and len(summary) > len(without)
