"""The batched torch augmentations of the `fast` level: geometry, labels outside the crop, intensity transforms."""

import itertools
import math

import numpy as np
import torch

from segkit.training.augmentation import (
    AnisotropicLowResolutionTransform,
    BatchSpatialTransform,
    BiasFieldTransform,
    PreviousStageToData,
    _rotation_matrix,
    ball,
    morphology,
    sample_size_for,
)


def _batch(size, batch=2, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((batch, 1, *size)).astype(np.float32),
            rng.integers(0, 3, (batch, 1, *size)).astype(np.float32))


def test_untransformed_samples_are_exact_centre_crops():
    patch = [16, 20, 12]
    size = sample_size_for(patch, "fast")
    assert all((s - p) % 2 == 0 and s > p for s, p in zip(size, patch))
    data, seg = _batch(size)
    out = BatchSpatialTransform(patch, p_rotation=0, p_scale=0, p_elastic=0)(data=data.copy(), seg=seg.copy())
    lo = [(s - p) // 2 for s, p in zip(size, patch)]
    crop = (slice(None), slice(None)) + tuple(slice(a, a + p) for a, p in zip(lo, patch))
    assert np.array_equal(out["data"], data[crop]) and np.array_equal(out["seg"], seg[crop])


def test_grid_rotates_like_numpy_and_marks_outside_labels():
    transform = BatchSpatialTransform([16, 16, 16])
    data, seg = _batch([20, 20, 20], batch=1)
    grid = transform._grid([_rotation_matrix([math.pi / 2, 0, 0])], [None], [20, 20, 20], [2, 2, 2])
    rotated = torch.nn.functional.grid_sample(torch.from_numpy(data), grid, align_corners=True).numpy()
    centre = data[:, :, 2:18, 2:18, 2:18]
    assert min(np.abs(rotated - np.rot90(centre, k, axes=axes)).max()
               for k in (1, 3) for axes in ((2, 3), (2, 4), (3, 4))) < 1e-4
    np.random.seed(0)
    zoomed = BatchSpatialTransform([16, 16, 16], p_rotation=0, p_scale=1, scale=(1.6, 1.6), p_elastic=0)
    out = zoomed(data=data.copy(), seg=seg.copy())
    assert (out["seg"][:, :, 0] == -1).all()              # sampled outside the crop -> ignore label
    assert set(np.unique(out["seg"])) <= {-1.0, 0.0, 1.0, 2.0}


def test_intensity_transforms_change_only_when_drawn_and_keep_shape():
    data, _ = _batch([12, 12, 12])
    np.random.seed(1)
    biased = BiasFieldTransform(strength=0.3, p_per_sample=1.0)(data=data.copy())["data"]
    assert biased.shape == data.shape and not np.allclose(biased, data)
    assert np.allclose(biased.min(axis=(1, 2, 3, 4)), data.min(axis=(1, 2, 3, 4)), atol=1e-5)  # minimum stays
    assert np.array_equal(BiasFieldTransform(p_per_sample=0.0)(data=data.copy())["data"], data)
    np.random.seed(2)
    thick = AnisotropicLowResolutionTransform(factor=(3.0, 3.0), p_per_sample=1.0)(data=data.copy())["data"]
    assert thick.shape == data.shape and thick.std() < data.std()   # averaging along one axis smooths noise


def _blobs(shape=(20, 24, 24)) -> np.ndarray:
    """A label map with a large class-1 block, a class-2 block touching it and two small class-2 islands."""
    labels = np.zeros(shape, dtype=np.int16)
    labels[4:14, 4:16, 4:16] = 1
    labels[4:14, 16:20, 4:16] = 2
    labels[16:18, 2:4, 2:4] = 2
    labels[16:18, 20:22, 20:22] = 2
    return labels


def test_previous_stage_labels_become_one_hot_data_channels_untouched_without_perturbation():
    previous = _blobs()
    data = np.random.default_rng(0).standard_normal((2, 3, *previous.shape)).astype(np.float32)
    seg = np.stack([np.stack([previous * 0, previous]), np.stack([previous, previous * 0])]).astype(np.float32)
    out = PreviousStageToData([[1], [2]], perturb=False)(data=data.copy(), seg=seg.copy())
    assert out["seg"].shape == (2, 1, *previous.shape) and np.array_equal(out["seg"], seg[:, :1])
    assert out["data"].shape == (2, 5, *previous.shape) and np.array_equal(out["data"][:, :3], data)
    np.testing.assert_array_equal(out["data"][0, 3], previous == 1)
    np.testing.assert_array_equal(out["data"][0, 4], previous == 2)
    assert not out["data"][1, 3:].any()


def test_previous_stage_perturbation_is_seeded_changes_shapes_and_keeps_channels_exclusive():
    previous = _blobs()
    seg = np.stack([np.stack([np.zeros_like(previous), previous])] * 4).astype(np.float32)
    data = np.zeros((4, 1, *previous.shape), dtype=np.float32)
    transform = PreviousStageToData([[1], [2]])
    runs = []
    for seed in (5, 5, *range(6, 14)):
        np.random.seed(seed)
        runs.append(transform(data=data.copy(), seg=seg.copy())["data"][:, 1:])
    assert np.array_equal(runs[0], runs[1])                        # same batch seed, same perturbation
    exact = (np.stack([previous == 1, previous == 2]))
    changed = [not np.array_equal(sample, exact) for run in runs for sample in run]
    assert 0 < sum(changed) < len(changed)                          # some samples perturbed, not all
    assert all(set(np.unique(run)) <= {0.0, 1.0} and run.sum(axis=1).max() <= 1 for run in runs)


def test_morphology_in_the_box_equals_the_whole_volume_operation():
    from scipy import ndimage

    mask = _blobs() == 2
    for operation, radius in (("dilation", 3.5), ("erosion", 1.0), ("opening", 2.0), ("closing", 2.5)):
        structure = ball(radius, 3)
        full = {"dilation": ndimage.binary_dilation, "erosion": ndimage.binary_erosion,
                "opening": ndimage.binary_opening, "closing": ndimage.binary_closing}[operation](mask, structure)
        if operation == "closing":
            full |= mask
        assert np.array_equal(morphology(mask, operation, radius), full), operation
    assert ball(1.0, 3).sum() == 7 and ball(2.0, 2).shape == (5, 5)


def test_pair_swap_mirroring_flips_like_batchgenerators_and_swaps_the_pairs_on_left_right_flips():
    from batchgenerators.transforms.spatial_transforms import MirrorTransform

    from segkit.training.augmentation import PairSwapMirrorTransform

    rng = np.random.default_rng(3)
    data = rng.normal(size=(6, 1, 4, 5, 6)).astype(np.float32)
    seg = rng.integers(0, 4, size=(6, 1, 4, 5, 6)).astype(np.float32)
    table = np.array([0, 2, 1, 3])           # pair (1, 2); 3 is a midline structure
    np.random.seed(7)
    plain = MirrorTransform((0, 1, 2))(data=data.copy(), seg=seg.copy())
    np.random.seed(7)
    swapped = PairSwapMirrorTransform((0, 1, 2), 2, table)(data=data.copy(), seg=seg.copy())
    # the same random draws: the same flips of the image
    np.testing.assert_array_equal(plain["data"], swapped["data"])
    lr_flips = []
    for b in range(len(data)):
        flips = [dims for dims in itertools.chain.from_iterable(itertools.combinations((1, 2, 3), r) for r in range(4))
                 if np.array_equal(np.flip(data[b], dims) if dims else data[b], plain["data"][b])]
        assert len(flips) == 1
        lr_flips.append(3 in flips[0])
        # a sample flipped along left/right has its pairs exchanged, the others keep their labels
        expected = table[plain["seg"][b].astype(int)] if lr_flips[-1] else plain["seg"][b]
        np.testing.assert_array_equal(swapped["seg"][b], expected)
    assert any(lr_flips) and not all(lr_flips)     # seed 7: some samples flipped left/right, some not
    assert set(np.unique(swapped["seg"])) <= {0, 1, 2, 3}
