"""The batched torch augmentations of the `fast` level: geometry, labels outside the crop, intensity transforms."""

import itertools
import math

import numpy as np
import torch

from segkit.training.augmentation import (
    AnisotropicLowResolutionTransform,
    BatchSpatialTransform,
    BiasFieldTransform,
    _rotation_matrix,
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
