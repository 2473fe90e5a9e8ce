"""Prediction's out-of-memory back-off: the sliding window retries with less memory instead of failing.

On CUDA out-of-memory the tile batch is halved (down to 1), then the tile patch shrinks by the
planner's rule (segkit.oom.shrink_patch: a multiple of the network's total strides, the axis
with the largest physical extent first). The network is fully convolutional, so a smaller tile
is still a valid input; every change and the allocator's peaks at the failure are printed and
kept in `model.extra["window_backoff"]`, and later cases start from the reduced settings.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np
import torch

from segkit import logs, oom
from segkit.errors import UserError
from segkit.inference.model import LoadedModel
from segkit.inference.sliding_window import WindowSettings, sliding_window_logits


def _warn(message: str) -> None:
    """One line on stderr."""
    logs.warning(message, event="oom_backoff")


def window_logits(model: LoadedModel, data: np.ndarray, settings: WindowSettings,
                  network: torch.nn.Module | None = None, log: Callable[[str], None] = _warn) -> torch.Tensor:
    """sliding_window_logits with a fold's network (default: the model's), backing off on CUDA out-of-memory."""
    network = model.network if network is None else network
    device = torch.device(model.device)
    state = model.extra.get("window_backoff")
    if state:
        settings = replace(settings, tile_batch=state["tile_batch"], patch_size=tuple(state["patch_size"]))
    while True:
        try:
            return sliding_window_logits(network, data, model.num_outputs, settings, device)
        except RuntimeError as err:              # torch.cuda.OutOfMemoryError is a RuntimeError
            if not oom.is_out_of_memory(err):
                raise
        peaks = oom.device_peaks(device)
        oom.release(device)
        settings, change = _smaller(model, settings)
        state = model.extra.setdefault("window_backoff", {"changes": []})
        state.update(tile_batch=settings.tile_batch, patch_size=list(settings.patch_size))
        state["changes"].append({"change": change, **peaks})
        log(f"out of memory in the sliding window: {change}")


def _smaller(model: LoadedModel, settings: WindowSettings) -> tuple[WindowSettings, str]:
    """The next cheaper settings and what changed; UserError when nothing is left to shrink."""
    if settings.tile_batch > 1:
        return replace(settings, tile_batch=settings.tile_batch // 2), f"tile batch {settings.tile_batch // 2}"
    entry = model.entry
    patch = oom.shrink_patch(list(settings.patch_size), list(entry.patch_spacing),
                             list(entry.architecture.total_strides))
    if patch is None:
        raise UserError(f"out of memory on {model.device} even with one tile of {list(settings.patch_size)}: "
                        "predict on the CPU (--device cpu) or a card with more memory")
    return replace(settings, patch_size=tuple(patch)), f"tile patch {patch}"
