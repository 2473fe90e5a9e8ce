"""Segmentation losses: soft Dice + cross-entropy (softmax) or + BCE (sigmoid regions), deep supervision.

Outside the nonzero mask: voxels carry -1 in the preprocessed segmentation. Like nnU-Net, the
target conversion maps them to background (0), so they count as background for CE and Dice.

Ignore label (sparse annotation, docs/sparse-annotation.md): unannotated voxels are marked in the
target -- softmax targets hold IGNORE_TARGET (-1) there; sigmoid (region) targets carry one extra
last channel, the annotated mask (1 annotated, 0 ignored). Both loss terms then count only
annotated voxels: CE/BCE is averaged over them, the soft Dice sums run over them. A target
without ignored voxels gives exactly the dense loss; a batch with no annotated voxel gives 0 with
a zero gradient.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

SMOOTH = 1e-5
IGNORE_TARGET = -1   # softmax target value of an unannotated voxel


def deep_supervision_weights(outputs: int | Sequence[Sequence[int]]) -> list[float]:
    """Weights halving per resolution, the lowest resolution dropped, normalised to sum 1.

    outputs: the number of outputs (one per resolution, highest first), or each output's
    downsampling factors relative to the patch (the trainer's ds_scales). Outputs at the same
    resolution share its weight, so the nested full-resolution outputs of UNet++ are weighted
    equally, as in the UNet++ paper; when there is a single resolution nothing is dropped.
    """
    scales = [[index] for index in range(outputs)] if isinstance(outputs, int) else [list(s) for s in outputs]
    if len(scales) <= 1:
        return [1.0]
    levels = sorted({math.prod(s) for s in scales})
    rank = [levels.index(math.prod(s)) for s in scales]
    weights = [0.5 ** r if (r < len(levels) - 1 or len(levels) == 1) else 0.0 for r in rank]
    total = sum(weights)
    return [w / total for w in weights]


def _reduce_axes(ndim: int, batch_dice: bool) -> list[int]:
    """Axes summed in the Dice: spatial axes, plus the batch axis for batch Dice."""
    spatial = list(range(2, ndim))
    return [0] + spatial if batch_dice else spatial


def soft_dice(probs: torch.Tensor, target: torch.Tensor, batch_dice: bool) -> torch.Tensor:
    """Mean soft Dice of probs vs a same-shaped one-hot/region target (per channel, then averaged)."""
    axes = _reduce_axes(probs.ndim, batch_dice)
    intersection = (probs * target).sum(axes)
    denominator = probs.sum(axes) + target.sum(axes)
    dice = (2 * intersection + SMOOTH) / (denominator + SMOOTH).clamp_min(1e-8)
    return dice.mean()


def softmax_dice_ce(logits: torch.Tensor, target: torch.Tensor, batch_dice: bool) -> torch.Tensor:
    """CE + (1 - soft Dice over foreground classes); target is an int map (B, 1, ...), IGNORE_TARGET = unannotated."""
    logits = logits.float()
    labels = target[:, 0].long()
    annotated = labels != IGNORE_TARGET
    if bool(annotated.all()):
        ce = F.cross_entropy(logits, labels)
        probs = torch.softmax(logits, 1)[:, 1:]
        onehot = torch.zeros_like(logits).scatter_(1, labels[:, None], 1.0)[:, 1:]
        return ce + 1.0 - soft_dice(probs, onehot, batch_dice)
    labels = labels.clamp_min(0)
    weight = annotated.float()
    ce = (F.cross_entropy(logits, labels, reduction="none") * weight).sum() / weight.sum().clamp_min(1.0)
    probs = torch.softmax(logits, 1)[:, 1:] * weight[:, None]
    onehot = torch.zeros_like(logits).scatter_(1, labels[:, None], 1.0)[:, 1:] * weight[:, None]
    return ce + 1.0 - soft_dice(probs, onehot, batch_dice)


def sigmoid_dice_bce(logits: torch.Tensor, target: torch.Tensor, batch_dice: bool) -> torch.Tensor:
    """BCE + (1 - soft Dice) over regions; target is a float region mask (B, R, ...), plus the annotated mask
    as an extra last channel (B, R + 1, ...) when the dataset has an ignore label."""
    logits = logits.float()
    target = target.float()
    if target.shape[1] == logits.shape[1]:
        bce = F.binary_cross_entropy_with_logits(logits, target)
        return bce + 1.0 - soft_dice(torch.sigmoid(logits), target, batch_dice)
    if target.shape[1] != logits.shape[1] + 1:
        raise ValueError(f"region target has {target.shape[1]} channels for {logits.shape[1]} outputs")
    weight, target = target[:, -1:], target[:, :-1]
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none") * weight
    bce = bce.sum() / (weight.sum() * logits.shape[1]).clamp_min(1.0)
    return bce + 1.0 - soft_dice(torch.sigmoid(logits) * weight, target * weight, batch_dice)


def build_loss(label_mode: str, num_ds_outputs: int | Sequence[Sequence[int]], batch_dice: bool = False
               ) -> Callable[[Sequence[torch.Tensor] | torch.Tensor, Sequence[torch.Tensor] | torch.Tensor], torch.Tensor]:
    """The training loss for a plans label_mode, weighting deep-supervision outputs (highest resolution first).

    num_ds_outputs: the number of outputs, or their downsampling factors (deep_supervision_weights).
    """
    if label_mode not in ("softmax", "sigmoid"):
        raise ValueError(f"unknown label_mode {label_mode!r}")
    single = softmax_dice_ce if label_mode == "softmax" else sigmoid_dice_bce
    weights = deep_supervision_weights(num_ds_outputs)

    def loss(outputs, targets) -> torch.Tensor:
        """Weighted sum of the per-resolution losses."""
        if isinstance(outputs, torch.Tensor):
            outputs, targets = [outputs], [targets if isinstance(targets, torch.Tensor) else targets[0]]
        total = outputs[0].new_zeros((), dtype=torch.float32)
        # zero-weight outputs still enter the graph so DDP sees a gradient for every parameter
        for weight, output, target in zip(weights, outputs, targets):
            if output.shape[2:] != target.shape[2:]:
                raise ValueError(f"output shape {tuple(output.shape)} does not match target {tuple(target.shape)}")
            total = total + weight * single(output, target, batch_dice)
        return total

    return loss


def predicted_masks(logits: torch.Tensor, label_mode: str) -> torch.Tensor:
    """Boolean masks (B, K, ...) of the foreground classes/regions predicted by logits."""
    if label_mode == "sigmoid":
        return logits > 0
    pred = logits.argmax(1)
    return torch.stack([pred == k for k in range(1, logits.shape[1])], 1)


def target_masks(target: torch.Tensor, label_mode: str, num_outputs: int) -> torch.Tensor:
    """Boolean masks (B, K, ...) of the foreground classes/regions in a loader target."""
    if label_mode == "sigmoid":
        return target[:, :num_outputs] > 0.5
    labels = target[:, 0]
    return torch.stack([labels == k for k in range(1, num_outputs)], 1)


def annotated_mask(target: torch.Tensor, label_mode: str, num_outputs: int) -> torch.Tensor | None:
    """Boolean (B, 1, ...) mask of the annotated voxels of a loader target; None when every voxel is annotated."""
    if label_mode == "sigmoid":
        return target[:, num_outputs:num_outputs + 1] > 0.5 if target.shape[1] > num_outputs else None
    annotated = target[:, :1] != IGNORE_TARGET
    return None if bool(annotated.all()) else annotated
