"""A cascade stage's previous-stage input: one-hot channels, seeded perturbations, morphology in the mask's box."""

import numpy as np
from scipy import ndimage

from segkit.training.cascade_perturbation import PreviousStageToData, ball, morphology


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

    mask = _blobs() == 2
    for operation, radius in (("dilation", 3.5), ("erosion", 1.0), ("opening", 2.0), ("closing", 2.5)):
        structure = ball(radius, 3)
        full = {"dilation": ndimage.binary_dilation, "erosion": ndimage.binary_erosion,
                "opening": ndimage.binary_opening, "closing": ndimage.binary_closing}[operation](mask, structure)
        if operation == "closing":
            full |= mask
        assert np.array_equal(morphology(mask, operation, radius), full), operation
    assert ball(1.0, 3).sum() == 7 and ball(2.0, 2).shape == (5, 5)
