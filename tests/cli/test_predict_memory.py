"""`segkit predict`'s memory after the network: no full-volume copies per voxel beyond a fixed budget.

The large-CT goal (docs/benchmarks/predict-memory.md) needs everything after the network to
work in slabs: the revert, the labels, the statistics and the QC picture. A QC picture that
listed every foreground voxel's index (np.argwhere, 24 bytes each, plus their float64 mean)
and statistics that converted the whole label map to int64 took segkit's peak on a
300 x 512 x 512 CT from 1.7 to 5.4 GiB unnoticed. This test runs the real CLI on a case whose
every voxel is foreground and bounds the numpy memory (tracemalloc sees every numpy buffer;
torch's own allocations, the network's work, are not counted) per input voxel: a count of
allocations, not of the machine's pages, so it does not depend on the load.
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import torch
from inference_fixtures import make_model_dir, read_array

from segkit.batch import preview, statistics
from segkit.cli import main
from segkit.inference import revert
from segkit.io.image import Geometry, write_image

SHAPE = (24, 192, 192)     # 0.88 M voxels at the plan's spacing: no resampling, a few tiles
# numpy bytes per input voxel at the peak, measured 2026-12-07: 21.6 (the input read as float32
# and stacked, its preprocessed copies and the network input; the revert is slab-wise). The
# argwhere QC picture and whole-map int64 statistics added 56 bytes per foreground voxel.
BYTES_PER_VOXEL = 32


def all_foreground_model(work):
    """The tiny one-channel model with its output biased to label 1 everywhere (every voxel foreground)."""
    model_dir = make_model_dir(work, num_channels=1)
    path = model_dir / "fold_0" / "checkpoint_final.pt"
    payload = torch.load(path, weights_only=False)
    head = [key for key in payload["network_state"] if key.endswith(".bias") and
            payload["network_state"][key].shape == (payload["num_outputs"],)][-1]
    payload["network_state"][head][1] += 1000.0
    torch.save(payload, path)
    return model_dir


def write_body(path, shape):
    """A one-channel int16 CT-like volume without zeros (no crop box smaller than the image), at the plan's spacing."""
    rng = np.random.default_rng(0)
    volume = (300 + rng.normal(0, 40, shape)).astype(np.int16)
    write_image(volume, Geometry((1.0, 1.0, 2.5), (0.0, 0.0, 0.0), (1, 0, 0, 0, 1, 0, 0, 0, 1), shape[::-1]), path)


def predict(model_dir, folder, out) -> int:
    """segkit predict with the default outputs (labels, QC picture, report), no TTA, one tile per patch."""
    return main(["predict", "-i", str(folder), "-o", str(out), "-m", str(model_dir), "--device", "cpu", "--no-tta",
                 "--step", "1", "--precision", "fp32", "--threads", "1"])


def test_predict_numpy_peak_per_voxel_is_bounded(tmp_path, monkeypatch):
    model_dir = all_foreground_model(tmp_path / "work")
    write_body(tmp_path / "warm" / "case_0000.nii.gz", (8, 32, 32))
    write_body(tmp_path / "in" / "case_0000.nii.gz", SHAPE)
    # the working sizes scaled to this volume as they are to a 300 x 512 x 512 CT (slab 1/40 of the volume)
    monkeypatch.setattr(revert, "SLAB_BYTES", 1 << 20)
    monkeypatch.setattr(statistics, "COUNT_CHUNK_VOXELS", 1 << 16)
    monkeypatch.setattr(preview, "CENTRE_SLAB_VOXELS", 1 << 16)
    assert predict(model_dir, tmp_path / "warm", tmp_path / "warm_out") == 0   # every lazy import done before
    tracemalloc.start()
    try:
        start, _ = tracemalloc.get_traced_memory()
        code = predict(model_dir, tmp_path / "in", tmp_path / "out")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert code == 0
    labels = read_array(tmp_path / "out" / "case.nii.gz")
    assert labels.shape == SHAPE and (labels == 1).all()          # every voxel foreground, as built
    assert (tmp_path / "out" / "case_qc.png").is_file()            # the default outputs ran
    per_voxel = (peak - start) / np.prod(SHAPE)
    assert per_voxel < BYTES_PER_VOXEL, f"numpy peak {per_voxel:.1f} bytes per input voxel"
