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


def test_training_on_cases_takes_step_i_from_case_i_mod_n():
    script = _script()
    volume = np.random.default_rng(0).normal(size=(1, 6, 10, 10)).astype(np.float32)
    zeros, ones = np.zeros((6, 10, 10), dtype=np.int64), np.ones((6, 10, 10), dtype=np.int64)

    def fitted(cases: list) -> torch.Tensor:
        torch.manual_seed(0)
        network = torch.nn.Conv3d(1, 2, 1)
        script.train_on_cases(network, cases, [4, 8, 8], 2, "unet")
        return network.bias.detach()

    one_case = fitted([(volume, zeros)])
    assert torch.equal(one_case, fitted([(volume, zeros), (volume, zeros)]))
    assert not torch.equal(one_case, fitted([(volume, zeros), (volume, ones)]))   # step 1 saw the second case
    # one case: the same seeded steps as train()
    torch.manual_seed(0)
    network = torch.nn.Conv3d(1, 2, 1)
    script.train(network, volume, zeros, [4, 8, 8], 2, "unet")
    assert torch.equal(network.bias.detach(), one_case)


def test_resampled_image_keeps_the_corner_and_gives_the_new_spacing(tmp_path):
    from segkit.io.image import Geometry, read_image, write_image

    script = _script()
    array = np.random.default_rng(0).uniform(1, 2, size=(8, 12, 16)).astype(np.float32)
    source = Geometry((1.0, 1.0, 1.0), (10.0, 20.0, -30.0), (-1.0, 0, 0, 0, -1.0, 0, 0, 0, 1.0), (16, 12, 8))
    write_image(array, source, tmp_path / "image.nii.gz")
    data, geometry = script.resampled_image(tmp_path / "image.nii.gz", 2.0)
    assert data.shape == (1, 4, 6, 8) and geometry.size == (8, 6, 4) and geometry.spacing == (2.0, 2.0, 2.0)
    assert np.allclose(geometry.origin, (9.5, 19.5, -29.5)) and geometry.direction == source.direction

    def centre(g: Geometry) -> np.ndarray:
        """Physical centre of the grid."""
        d = np.asarray(g.direction).reshape(3, 3)
        return np.asarray(g.origin) + d @ (np.asarray(g.spacing) * (np.asarray(g.size) - 1) / 2)

    assert np.allclose(centre(geometry), centre(read_image(tmp_path / "image.nii.gz").geometry))
    assert np.allclose(script.real_volume(tmp_path / "image.nii.gz", 2.0)[0].mean(), 0.0, atol=1e-5)
