"""Losses: deep-supervision weights, soft Dice + CE, region BCE + Dice, targets from labels."""

import numpy as np
import pytest
import torch

from segkit.training.augmentation import DeepSupervisionTargets, SegToTarget, downsample_target
from segkit.training.losses import build_loss, deep_supervision_weights, soft_dice


def test_deep_supervision_weights_halve_drop_lowest_and_sum_to_one():
    weights = deep_supervision_weights(4)
    assert weights[3] == 0.0
    assert weights[0] == pytest.approx(2 * weights[1]) and weights[1] == pytest.approx(2 * weights[2])
    assert sum(weights) == pytest.approx(1.0)
    assert deep_supervision_weights(1) == [1.0]


def test_soft_dice_of_known_overlap():
    probs = torch.zeros(1, 1, 4, 4)
    target = torch.zeros(1, 1, 4, 4)
    probs[..., :2, :] = 1          # 8 predicted voxels
    target[..., 1:3, :] = 1        # 8 true voxels, 4 shared
    assert float(soft_dice(probs, target, batch_dice=False)) == pytest.approx(2 * 4 / 16, abs=1e-4)


def _labels(shape=(2, 1, 6, 8, 8), classes=3, seed=0) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).integers(0, classes, shape)).float()


def test_softmax_loss_is_low_for_confident_correct_logits_and_high_for_wrong():
    target = _labels()
    right = torch.nn.functional.one_hot(target[:, 0].long(), 3).permute(0, 4, 1, 2, 3).float() * 20
    wrong = torch.roll(right, 1, dims=1)
    loss = build_loss("softmax", 1)
    assert float(loss(right, target)) < 0.01
    assert float(loss(wrong, target)) > 1.9


def test_background_is_excluded_from_the_dice_term():
    target = torch.zeros(1, 1, 4, 4, 4)
    target[..., :2, :, :] = 1
    logits = torch.zeros(1, 2, 4, 4, 4)
    logits[:, 0] = 20               # everything predicted background: foreground Dice 0
    loss = build_loss("softmax", 1)(logits, target)
    assert float(loss) > 1.0        # CE (~10 on half the voxels) + Dice term ~1


def test_sigmoid_region_loss_and_gradients():
    regions = (torch.rand(2, 3, 4, 8, 8) > 0.5).float()
    logits = ((regions * 2 - 1) * 20).requires_grad_()
    loss = build_loss("sigmoid", 1)(logits, regions)
    assert float(loss) < 0.01
    noisy = torch.randn(2, 3, 4, 8, 8, requires_grad=True)
    value = build_loss("sigmoid", 1)(noisy, regions)
    value.backward()
    assert float(value) > 0.5 and noisy.grad.abs().sum() > 0


def test_deep_supervision_loss_uses_every_output_and_checks_shapes():
    target = _labels((1, 1, 8, 8, 8))
    outputs = [torch.randn(1, 3, 8, 8, 8, requires_grad=True), torch.randn(1, 3, 4, 4, 4, requires_grad=True),
               torch.randn(1, 3, 2, 2, 2, requires_grad=True)]
    targets = DeepSupervisionTargets([[1, 1, 1], [2, 2, 2], [4, 4, 4]], "softmax")(target=target.numpy())["target"]
    loss = build_loss("softmax", 3)(outputs, [torch.from_numpy(t) for t in targets])
    loss.backward()
    assert outputs[1].grad.abs().sum() > 0
    assert outputs[2].grad.abs().sum() == 0      # lowest resolution: weight 0, but still in the graph (DDP)
    with pytest.raises(ValueError):
        build_loss("softmax", 2)(outputs[:2], [torch.from_numpy(targets[0])] * 2)


def test_outside_mask_label_becomes_background_and_regions_are_unions():
    seg = np.array([[-1, 0, 1, 2, 3]], dtype=np.float32).reshape(1, 1, 1, 1, 5)
    softmax = SegToTarget("softmax")(seg=seg.copy())["target"]
    assert softmax.ravel().tolist() == [0, 0, 1, 2, 3]
    regions = SegToTarget("sigmoid", [[1, 2, 3], [1, 3], [3]])(seg=seg.copy())["target"]
    assert regions.shape == (1, 3, 1, 1, 5)
    assert regions[0, :, 0, 0].tolist() == [[0, 0, 1, 1, 1], [0, 0, 1, 0, 1], [0, 0, 0, 0, 1]]


def test_region_targets_are_max_pooled_and_labels_nearest_sampled():
    regions = np.zeros((1, 1, 4, 4, 4), dtype=np.float32)
    regions[0, 0, 3, 3, 3] = 1                   # one voxel of a small region survives max-pooling
    pooled = downsample_target(regions, [2, 2, 2], "sigmoid")
    assert pooled.shape == (1, 1, 2, 2, 2) and pooled[0, 0, 1, 1, 1] == 1 and pooled.sum() == 1
    labels = np.arange(16, dtype=np.float32).reshape(1, 1, 1, 4, 4)
    assert downsample_target(labels, [1, 2, 2], "softmax").ravel().tolist() == [0, 2, 8, 10]
