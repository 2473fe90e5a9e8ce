"""Out-of-memory back-off: candidates by the planner's rule, an injected CUDA OOM, records, and a CPU run."""

import json
import math

import pytest
import torch
from training_data import TINY_ARCH, configuration, copy_work, make_work_dir

from segkit.cli import main as segkit_main
from segkit.errors import UserError
from segkit.training import memory_backoff
from segkit.training.memory_backoff import back_off, candidates, shrink_patch

CPU = torch.device("cpu")


def _entry(batch=8, patch=(16, 64, 48), spacing=(3.0, 1.0, 1.0), **fields):
    return configuration(patch_size=list(patch), batch_size=batch, target_spacing=list(spacing),
                         architecture=dict(TINY_ARCH), **fields)   # total strides [2, 4, 4]


def test_candidates_halve_the_batch_then_shrink_the_longest_physical_axis():
    listed = list(candidates(_entry()))
    assert [c.batch_size for _, c in listed[:4]] == [8, 4, 2, 2]
    assert [change for change, _ in listed[:3]] == ["as planned", "batch size 4", "batch size 2"]
    patches = [list(c.patch_size) for _, c in listed[3:]]
    assert patches[0] == [16, 48, 48]           # y (64 mm) is the longest extent: 4 off at a time until <= 0.8 of the voxels
    for previous, patch in zip([[16, 64, 48]] + patches, patches):
        assert math.prod(patch) <= 0.8 * math.prod(previous) or patch == [2, 4, 4]
        assert all(p % s == 0 and p >= s for p, s in zip(patch, [2, 4, 4]))
    assert patches[-1] == [2, 4, 4] and shrink_patch(listed[-1][1]) is None
    two_d = configuration(patch_size=[32, 32], batch_size=8, slice_axis=0, target_spacing=[5.0, 1.0, 2.0],
                          architecture={**TINY_ARCH, "strides": [[1, 1], [2, 2], [2, 2]]})
    assert shrink_patch(two_d).patch_size == (32, 24)     # x has the 2 mm spacing (slice axis dropped)


def _fake_probe(limit_voxels):
    """Raises CUDA's OOM when batch x patch voxels exceed the limit, else reports made-up peaks."""
    def probe(entry):
        voxels = entry.batch_size * math.prod(entry.patch_size)
        if voxels > limit_voxels:
            raise torch.cuda.OutOfMemoryError(f"CUDA out of memory ({voxels} voxels)")
        return {"max_memory_allocated": voxels * 100, "max_memory_reserved": voxels * 128}
    return probe


def test_back_off_takes_the_first_candidate_that_fits_and_records_every_attempt():
    entry = _entry()
    chosen, record = back_off(entry, _fake_probe(2 * 16 * 52 * 48), CPU, log=lambda m: None)
    assert chosen.batch_size == 2 and chosen.patch_size == (16, 48, 48)
    assert [a["fits"] for a in record["attempts"]] == [False, False, False, True]
    assert record["attempts"][-1]["max_memory_reserved"] == 2 * 16 * 48 * 48 * 128
    assert record["chosen"] == "patch [16, 48, 48]" and record["original"] == {"patch_size": [16, 64, 48], "batch_size": 8}
    assert entry.batch_size == 8 and entry.as_dict()["batch_size"] == 8   # the plan's entry is not modified
    # another rank running out of memory makes every rank back off
    votes = iter([False, True])
    chosen, record = back_off(entry, _fake_probe(10 ** 9), CPU, agree=lambda fits: fits and next(votes),
                              log=lambda m: None)
    assert chosen.batch_size == 4 and [a["fits"] for a in record["attempts"]] == [False, True]


def test_back_off_gives_up_with_a_user_error_and_lets_other_errors_through():
    # a small plan: 5 candidates down to the smallest instead of 23 (each failed probe runs oom.release's
    # gc.collect, ~0.4 s in a test worker's full heap)
    entry = _entry(batch=4, patch=(4, 8, 8))
    probed = []
    with pytest.raises(UserError, match=r"out of memory on cpu even at batch size 2 and patch \[2, 4, 4\]"):
        back_off(entry, lambda candidate: probed.append(candidate) or _fake_probe(0)(candidate), CPU,
                 log=lambda m: None)
    assert len(probed) == len(list(candidates(entry))) == 5      # every candidate was tried before giving up

    def broken(entry):
        raise RuntimeError("cuDNN error: CUDNN_STATUS_NOT_SUPPORTED")
    with pytest.raises(RuntimeError, match="NOT_SUPPORTED"):
        back_off(_entry(), broken, CPU, log=lambda m: None)


def test_real_probe_step_runs_the_recipes_optimiser_and_loss():
    from contextlib import nullcontext

    from segkit.networks import build_network
    from segkit.training.recipe import SHORT_CPU

    entry = _entry(batch=2, patch=(8, 16, 16))
    assert memory_backoff.probe_step(entry, 2, 3, "softmax", SHORT_CPU, 2, CPU, nullcontext, build_network) == {}
    assert memory_backoff.probe_step(entry, 2, 3, "sigmoid", SHORT_CPU, 1, CPU, nullcontext, build_network) == {}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    return make_work_dir(tmp_path_factory.mktemp("oom"))


def test_training_with_an_injected_oom_backs_off_records_and_finishes(prepared, tmp_path, monkeypatch):
    dataset, work = copy_work(*prepared, tmp_path)
    probed = []

    def fake_probe(entry, *args):
        probed.append((entry.batch_size, list(entry.patch_size)))
        if math.prod(entry.patch_size) > 8 * 12 * 16:            # the plan's 8x16x16 is "too big" for this card
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 1.00 GiB")
        return {"max_memory_allocated": 123, "max_memory_reserved": 456}

    monkeypatch.setattr(memory_backoff, "PROBE_DEVICE_TYPES", ("cuda", "cpu"))
    monkeypatch.setattr(memory_backoff, "probe_step", fake_probe)
    args = ["train", str(dataset), "--work-dir", str(work), "-f", "all", "--epochs", "1", "--iterations-per-epoch",
            "2", "--quiet", "--num-workers", "0", "--threads", "1"]
    assert segkit_main(args) == 0
    assert probed[0] == (2, [8, 16, 16]) and len(probed) == 2
    models = work / "models" / "3d_fullres"
    entry = json.loads((models / "plans.json").read_text())["configurations"]["3d_fullres"]
    assert entry["patch_size"] == probed[-1][1] and math.prod(entry["patch_size"]) <= 8 * 12 * 16
    fit = entry["memory_fit"]
    assert [a["fits"] for a in fit["attempts"]] == [False, True] and fit["attempts"][1]["max_memory_reserved"] == 456
    assert fit["original"]["patch_size"] == [8, 16, 16] and "source_plans_sha256" in fit
    schedule = json.loads((models / "fold_all" / "schedule.json").read_text())
    assert schedule["patch_size"] == entry["patch_size"] and schedule["memory_fit"]["chosen"] == fit["chosen"]
    assert any("out-of-memory back-off" in note for note in schedule["notes"])
    final = torch.load(models / "fold_all" / "checkpoint_final.pt", weights_only=True)
    assert final["step"] == 2
    # a resumed run reuses the fitted entry (its checkpoint matches) without probing again
    probed.clear()
    assert segkit_main(args + ["--resume", "--epochs", "2"]) == 0
    assert probed == []


def test_a_plan_that_fits_is_trained_as_planned_with_the_probe_peaks_noted(prepared, tmp_path, monkeypatch):
    dataset, work = copy_work(*prepared, tmp_path)
    monkeypatch.setattr(memory_backoff, "PROBE_DEVICE_TYPES", ("cuda", "cpu"))
    monkeypatch.setattr(memory_backoff, "probe_step",
                        lambda entry, *args: {"max_memory_allocated": 7 << 20, "max_memory_reserved": 8 << 20})
    assert segkit_main(["train", str(dataset), "--work-dir", str(work), "-f", "all", "--epochs", "1",
                        "--iterations-per-epoch", "1", "--quiet", "--num-workers", "0", "--threads", "1"]) == 0
    models = work / "models" / "3d_fullres"
    entry = json.loads((models / "plans.json").read_text())["configurations"]["3d_fullres"]
    assert "memory_fit" not in entry and entry["patch_size"] == [8, 16, 16]
    notes = json.loads((models / "fold_all" / "schedule.json").read_text())["notes"]
    assert "memory probe: the plan fits ({'max_memory_allocated': 7340032, 'max_memory_reserved': 8388608})" in notes
