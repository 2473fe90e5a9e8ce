"""Losses: deep-supervision weights, soft Dice + CE, region BCE + Dice, the ignore label's masks."""

import numpy as np
import pytest
import torch

from segkit.training.losses import (
    IGNORE_TARGET,
    annotated_mask,
    build_loss,
    deep_supervision_weights,
    sigmoid_dice_bce,
    soft_dice,
    softmax_dice_ce,
    target_masks,
)
from segkit.training.targets import DeepSupervisionTargets, SegToTarget


def test_deep_supervision_weights_halve_drop_lowest_and_sum_to_one():
    weights = deep_supervision_weights(4)
    assert weights[3] == 0.0
    assert weights[0] == pytest.approx(2 * weights[1]) and weights[1] == pytest.approx(2 * weights[2])
    assert sum(weights) == pytest.approx(1.0)
    assert deep_supervision_weights(1) == [1.0]


def test_deep_supervision_weights_by_resolution():
    """Given the outputs' downsampling factors: one weight per resolution, shared by outputs at that resolution."""
    unet = [[1, 1, 1], [1, 2, 2], [2, 4, 4], [4, 8, 8]]
    assert deep_supervision_weights(unet) == pytest.approx(deep_supervision_weights(4))
    # UNet++'s nested outputs are all at the patch resolution: equal weights, none dropped
    assert deep_supervision_weights([[1, 1, 1]] * 4) == pytest.approx([0.25] * 4)
    mixed = deep_supervision_weights([[1, 1], [1, 1], [2, 2], [4, 4]])
    assert mixed[0] == mixed[1] == pytest.approx(2 * mixed[2]) and mixed[3] == 0.0
    assert sum(mixed) == pytest.approx(1.0)


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


# ---- ignore label (sparse annotation) ----

IGNORE = 4


def test_masked_softmax_loss_equals_the_loss_on_the_annotated_voxels_alone():
    torch.manual_seed(0)
    logits = torch.randn(1, 4, 1, 1, 12)
    labels = torch.tensor([0, 1, 2, 3, 1, 2, 0, 3, 2, 1, 0, 1], dtype=torch.float32).reshape(1, 1, 1, 1, 12)
    annotated = torch.tensor([1, 1, 0, 1, 0, 1, 1, 0, 1, 1, 0, 1], dtype=torch.bool)
    target = torch.where(annotated.reshape(1, 1, 1, 1, 12), labels, torch.tensor(float(IGNORE_TARGET)))
    masked = softmax_dice_ce(logits, target, batch_dice=True)
    kept = softmax_dice_ce(logits[..., annotated], labels[..., annotated], batch_dice=True)
    assert torch.allclose(masked, kept, atol=1e-6)
    # the ignored voxels' logits do not matter at all
    changed = logits.clone()
    changed[..., ~annotated] = torch.randn(1, 4, 1, 1, int((~annotated).sum())) * 10
    assert torch.allclose(softmax_dice_ce(changed, target, True), masked, atol=1e-6)


def test_all_ignored_batch_gives_finite_loss_and_zero_gradient():
    for mode, channels, target in (("softmax", 4, torch.full((2, 1, 4, 8, 8), float(IGNORE_TARGET))),
                                   ("sigmoid", 3, torch.zeros(2, 4, 4, 8, 8))):   # last channel: annotated = 0
        outputs = [torch.randn(2, channels, 4, 8, 8, requires_grad=True),
                   torch.randn(2, channels, 2, 4, 4, requires_grad=True)]
        targets = [target, target[:, :, ::2, ::2, ::2]]
        loss = build_loss(mode, 2, batch_dice=True)(outputs, targets)
        loss.backward()
        assert torch.isfinite(loss) and float(loss) == 0.0
        assert all(float(o.grad.abs().max()) == 0.0 for o in outputs)


def test_region_loss_masks_with_the_annotated_channel():
    torch.manual_seed(1)
    logits = torch.randn(1, 2, 1, 1, 10)
    regions = (torch.rand(1, 2, 1, 1, 10) > 0.5).float()
    annotated = torch.tensor([1, 0, 1, 1, 0, 1, 1, 1, 0, 1], dtype=torch.bool)
    target = torch.cat([regions * annotated, annotated.float().reshape(1, 1, 1, 1, 10)], 1)
    masked = sigmoid_dice_bce(logits, target, batch_dice=True)
    assert torch.allclose(masked, sigmoid_dice_bce(logits[..., annotated], regions[..., annotated], True), atol=1e-6)
    with pytest.raises(ValueError):
        sigmoid_dice_bce(logits, torch.zeros(1, 4, 1, 1, 10), True)


def test_ignore_label_targets_for_softmax_and_regions():
    seg = np.array([-1, 0, 1, 2, 3, IGNORE], dtype=np.float32).reshape(1, 1, 1, 1, 6)
    softmax = SegToTarget("softmax", ignore_label=IGNORE)(seg=seg.copy())["target"]
    assert softmax.ravel().tolist() == [0, 0, 1, 2, 3, IGNORE_TARGET]
    regions = SegToTarget("sigmoid", [[1, 2, 3], [3]], ignore_label=IGNORE)(seg=seg.copy())["target"]
    assert regions[0, :, 0, 0].tolist() == [[0, 0, 1, 1, 1, 0], [0, 0, 0, 0, 1, 0], [1, 1, 1, 1, 1, 0]]
    mask = annotated_mask(torch.from_numpy(softmax), "softmax", 4)
    assert mask.ravel().tolist() == [True] * 5 + [False]
    assert annotated_mask(torch.from_numpy(regions), "sigmoid", 2).ravel().tolist() == [True] * 5 + [False]
    assert target_masks(torch.from_numpy(regions), "sigmoid", 2).shape[1] == 2
