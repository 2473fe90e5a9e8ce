"""Per-epoch validation on whole validation cases with a cheap sliding window.

Cheap = tiles of the patch size with no overlap (the last tile per axis is shifted to end at the
border), no Gaussian weighting and no mirroring. Dice is computed per output class/region over
all validation cases together (summed TP/FP/FN), in the preprocessed space; -1 counts as
background. The validation loss is the training loss (without deep supervision) on the
stitched logits.
"""

from __future__ import annotations

import itertools
from contextlib import nullcontext
from typing import Callable, Sequence

import numpy as np
import torch

from segkit.training.losses import predicted_masks, target_masks


def tile_starts(shape: Sequence[int], patch: Sequence[int], step_fraction: float = 1.0) -> list[list[int]]:
    """Tile origins per axis covering the volume; the last tile ends at the border."""
    starts = []
    for n, p in zip(shape, patch):
        if n <= p:
            starts.append([0])
            continue
        step = max(1, int(p * step_fraction))
        axis = list(range(0, n - p, step)) + [n - p]
        starts.append(sorted(set(axis)))
    return [list(s) for s in itertools.product(*starts)]


def _first_output(out) -> torch.Tensor:
    """The full-resolution logits of a deep-supervision list or a single tensor."""
    return out[0] if isinstance(out, (list, tuple)) else out


def sliding_window_logits(model: torch.nn.Module, image: torch.Tensor, patch: Sequence[int], num_outputs: int,
                          autocast: Callable[[], object] = nullcontext, tile_batch: int = 2) -> torch.Tensor:
    """Logits (K, *spatial) of a (C, *spatial) image, padded to at least the patch size."""
    spatial = image.shape[1:]
    padded_shape = [max(n, p) for n, p in zip(spatial, patch)]
    pad = []
    for n, p in zip(reversed(spatial), reversed(padded_shape)):
        pad += [0, p - n]
    padded = torch.nn.functional.pad(image, pad)
    logits = torch.zeros((num_outputs, *padded_shape), dtype=torch.float32, device=image.device)
    starts = tile_starts(padded_shape, patch)
    for i in range(0, len(starts), tile_batch):
        group = starts[i:i + tile_batch]
        tiles = torch.stack([padded[(slice(None),) + tuple(slice(s, s + p) for s, p in zip(st, patch))] for st in group])
        with autocast():
            out = _first_output(model(tiles)).float()
        for st, tile_logits in zip(group, out):
            logits[(slice(None),) + tuple(slice(s, s + p) for s, p in zip(st, patch))] = tile_logits
    return logits[(slice(None),) + tuple(slice(0, n) for n in spatial)]


def case_logits(model: torch.nn.Module, data: np.ndarray, patch: Sequence[int], spatial_dims: int, num_outputs: int,
                device: torch.device, autocast: Callable[[], object] = nullcontext) -> torch.Tensor:
    """Logits (K, z, y, x) of a whole preprocessed case; 2D configurations run slice by slice."""
    image = torch.from_numpy(np.array(data, dtype=np.float32)).to(device)
    if spatial_dims == 3:
        return sliding_window_logits(model, image, patch, num_outputs, autocast)
    slices = [sliding_window_logits(model, image[:, z], patch, num_outputs, autocast) for z in range(image.shape[1])]
    return torch.stack(slices, 1)


@torch.no_grad()
def validate(model: torch.nn.Module, cases: list, patch: Sequence[int], spatial_dims: int, num_outputs: int,
             label_mode: str, to_target: Callable[[np.ndarray], np.ndarray], loss_fn: Callable,
             device: torch.device, autocast: Callable[[], object] = nullcontext) -> dict:
    """Summed TP/FP/FN per class and the summed loss over cases: {"tp", "fp", "fn", "loss", "cases"}."""
    was_training = model.training
    model.eval()
    num_classes = num_outputs - 1 if label_mode == "softmax" else num_outputs
    tp, fp, fn = (torch.zeros(num_classes, dtype=torch.float64) for _ in range(3))
    loss_sum = 0.0
    for case in cases:
        logits = case_logits(model, case.data, patch, spatial_dims, num_outputs, device, autocast)[None]
        target = torch.from_numpy(to_target(np.asarray(case.seg)[None, None])).to(device)
        loss_sum += float(loss_fn(logits, target))
        pred, truth = predicted_masks(logits, label_mode), target_masks(target, label_mode, num_outputs)
        dims = [0] + list(range(2, pred.ndim))
        tp += (pred & truth).sum(dims).double().cpu()
        fp += (pred & ~truth).sum(dims).double().cpu()
        fn += (~pred & truth).sum(dims).double().cpu()
    model.train(was_training)
    return {"tp": tp, "fp": fp, "fn": fn, "loss": loss_sum, "cases": len(cases)}


def dice_from_counts(tp: torch.Tensor, fp: torch.Tensor, fn: torch.Tensor) -> list[float | None]:
    """Dice per class; None where a class is absent from both prediction and truth."""
    denominator = 2 * tp + fp + fn
    return [None if d == 0 else float(2 * t / d) for t, d in zip(tp, denominator)]
