"""Out-of-memory back-off: probe the first training steps on the device and shrink until they fit.

Rule (docs/cli/train.md "Out of memory"): before training on CUDA, PROBE_STEPS real optimiser
steps (the recipe's optimiser and loss, the training precision, random data of the batch and
patch to train) run on a throwaway network. If they raise CUDA out-of-memory, the batch is
halved (down to MIN_BATCH), then the patch shrinks along the planner's rule -- one total
stride off the axis with the largest physical extent, repeated until the patch has at most
PATCH_STEP of the previous candidate's voxels; the architecture is kept -- and the probe runs
again. Every attempt is recorded with the measured peaks (max_memory_allocated and
max_memory_reserved) in the model dir's plans.json ("memory_fit", next to "training_fit") and in
schedule.json. Training then continues with the first candidate that fits; only when even the
smallest one does not is it a UserError (one line, exit 2), never a traceback.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch

from segkit import oom
from segkit.errors import UserError
from segkit.plans import Configuration
from segkit.training.losses import build_loss
from segkit.training.recipe import Recipe, build_optimizer

PROBE_DEVICE_TYPES = ("cuda",)       # where the probe runs (tests add "cpu" with an injected error)
PROBE_STEPS = 2
MIN_BATCH = 2
PATCH_STEP = oom.PATCH_STEP


def shrink_patch(entry: Configuration) -> Configuration | None:
    """The configuration with a smaller patch by the planner's rule (same architecture), or None at the smallest."""
    patch = oom.shrink_patch(list(entry.patch_size), list(entry.patch_spacing),
                             list(entry.architecture.total_strides), PATCH_STEP)
    return None if patch is None else entry.replace(patch_size=patch)


def candidates(entry: Configuration, min_batch: int = MIN_BATCH) -> Iterator[tuple[str, Configuration]]:
    """The plan, then the batch halved down to min_batch, then ever smaller patches."""
    current = entry
    yield "as planned", current
    while current.batch_size > min_batch:
        current = current.replace(batch_size=max(min_batch, current.batch_size // 2))
        yield f"batch size {current.batch_size}", current
    while (smaller := shrink_patch(current)) is not None:
        current = smaller
        yield f"patch {list(current.patch_size)}", current


def _targets(outputs: list[torch.Tensor], label_mode: str, num_outputs: int) -> list[torch.Tensor]:
    """All-background targets shaped like the trainer's (label map for softmax, region masks for sigmoid)."""
    channels = 1 if label_mode == "softmax" else num_outputs
    return [torch.zeros((o.shape[0], channels, *o.shape[2:]), device=o.device) for o in outputs]


def probe_step(entry: Configuration, in_channels: int, num_outputs: int, label_mode: str, recipe: Recipe, batch_size: int,
               device: torch.device, autocast: Callable[[], Any], build: Callable) -> dict:
    """PROBE_STEPS optimiser steps of a fresh network on random data; the device's peaks (raises on OOM)."""
    oom.release(device)
    model = build(entry.architecture.as_dict(), in_channels, num_outputs).to(device)
    optimizer = build_optimizer(model.parameters(), recipe.optimizer, recipe.lr, recipe.momentum, recipe.weight_decay)
    data = torch.randn(batch_size, in_channels, *entry.patch_size, device=device)
    loss_fn = None
    for _ in range(PROBE_STEPS):
        optimizer.zero_grad(set_to_none=True)
        with autocast():
            outputs = model(data)
        outputs = list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]
        loss_fn = loss_fn or build_loss(label_mode, len(outputs), False)
        loss_fn(outputs, _targets(outputs, label_mode, num_outputs)).backward()
        optimizer.step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return oom.device_peaks(device)


def back_off(entry: Configuration, probe: Callable[[Configuration], dict], device: torch.device,
             agree: Callable[[bool], bool] = lambda fits: fits, log: Callable[[str], None] = print,
             min_batch: int = MIN_BATCH) -> tuple[Configuration, dict]:
    """The first candidate whose probe fits on every rank, and the record of every attempt.

    probe(candidate) returns the measured peaks or raises out-of-memory; agree(fits) combines the
    ranks' answers (all must fit). Any other error propagates.
    """
    attempts = []
    for change, candidate in candidates(entry, min_batch):
        peaks, fits = {}, True
        try:
            peaks = probe(candidate)
        except (RuntimeError, torch.cuda.OutOfMemoryError) as err:
            if not oom.is_out_of_memory(err):
                raise
            fits = False
        if not fits:
            peaks = oom.device_peaks(device)        # what the allocator held when it failed
            oom.release(device)
        fits = agree(fits)
        attempts.append({"change": change, "batch_size": candidate.batch_size,
                         "patch_size": list(candidate.patch_size), "fits": fits, **peaks})
        log(f"memory probe: {change}: {'fits' if fits else 'out of memory'}")
        if fits:
            oom.release(device)
            record = {"rule": "out-of-memory back-off: halve the batch (down to 2), then shrink the patch "
                              "(planner's rule); first candidate whose probe steps fit",
                      "chosen": change, "attempts": attempts,
                      "original": {"patch_size": list(entry.patch_size), "batch_size": entry.batch_size}}
            return candidate, record
    raise UserError(f"out of memory on {device} even at batch size {min_batch} and patch "
                    f"{attempts[-1]['patch_size']}: plan for less memory (segkit plan --gpu-memory GB)")
