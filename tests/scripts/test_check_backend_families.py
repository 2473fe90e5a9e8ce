"""scripts/check_backend_families.py: the atlas classes it trains on, and its short seeded training."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk
import torch
from script_loading import load_script


def _script():
    """The script as a module (scripts/ is not a package)."""
    return load_script("check_backend_families")


def test_atlas_regions_merge_into_the_four_trained_classes(tmp_path):
    script = _script()
    regions = np.zeros((4, 6, 6), dtype=np.int16)
    regions[0, :2] = 5      # a cortical AAL region
    regions[1, :2] = 95     # cerebellum
    regions[2, :2] = 77     # thalamus (deep grey)
    regions[3, :2] = 37     # hippocampus (mesial temporal, with deep grey)
    path = tmp_path / "atlas.nii.gz"
    sitk.WriteImage(sitk.GetImageFromArray(regions), str(path))
    labels = script.atlas_labels(path, (4, 6, 6))
    assert labels.dtype == np.int64
    assert [int(labels[z, 0, 0]) for z in range(4)] == [1, 2, 3, 3]
    assert int(labels[:, 2:].max()) == 0


def test_training_is_seeded_and_moves_the_weights():
    script = _script()
    volume = np.random.default_rng(0).normal(size=(1, 6, 10, 10)).astype(np.float32)
    labels = (volume[0] > 0).astype(np.int64)

    def fitted() -> tuple[float, torch.Tensor]:
        torch.manual_seed(0)
        network = torch.nn.Conv3d(1, 4, 1)
        before = network.weight.detach().clone()
        loss = script.train(network, volume, labels, [4, 8, 8], 3, "unet")
        assert not network.training and not torch.equal(before, network.weight)
        return loss, network.weight.detach()

    first, second = fitted(), fitted()
    assert np.isfinite(first[0]) and first[0] == second[0] and torch.equal(first[1], second[1])
