"""Prediction's out-of-memory back-off: an injected CUDA OOM halves the tile batch, then shrinks the tile."""

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from inference_fixtures import tiny_plans

from segkit.errors import UserError
from segkit.inference.memory_backoff import window_logits
from segkit.inference.model import LoadedModel
from segkit.inference.sliding_window import WindowSettings, sliding_window_logits
from segkit.networks import build_network
from segkit.plans import Plans

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class SmallCard(torch.nn.Module):
    """The network, raising CUDA's out-of-memory error for inputs above `limit` voxels (batch x tile)."""

    def __init__(self, network, limit):
        super().__init__()
        self.network, self.limit, self.calls = network, limit, []

    def forward(self, x):
        self.calls.append(tuple(x.shape))
        if math.prod(x.shape[:1] + x.shape[2:]) > self.limit:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 512.00 MiB")
        return self.network(x)


def _model(limit):
    plans = tiny_plans(num_channels=1)
    torch.manual_seed(0)
    network = build_network(plans["configurations"]["3d_fullres"]["architecture"], 1, plans["num_outputs"]).eval()
    network.deep_supervision = False
    return LoadedModel(Path("models"), Plans.from_json(plans), {}, "3d_fullres", SmallCard(network, limit), [{}], ["0"],
                       torch.device("cpu")), network


def test_tile_batch_halves_then_the_tile_shrinks_and_later_cases_start_there():
    data = np.random.default_rng(0).standard_normal((1, 10, 24, 24)).astype(np.float32)
    settings = WindowSettings((8, 16, 16), tile_batch=4)
    messages = []
    model, network = _model(limit=2 * 8 * 16 * 16)                  # two full tiles at a time
    logits = window_logits(model, data, settings, log=messages.append)
    torch.testing.assert_close(logits, sliding_window_logits(network, data, 4, settings))
    assert messages == ["out of memory in the sliding window: tile batch 2"]
    assert model.extra["window_backoff"]["tile_batch"] == 2

    model, network = _model(limit=8 * 12 * 16 - 1)                   # not even one full tile
    logits = window_logits(model, data, settings, log=messages.append)
    state = model.extra["window_backoff"]
    # z (8 x 2.5 mm) is the longest extent, one stride (1) at a time; then y and x by their stride 2
    assert [c["change"] for c in state["changes"]] == ["tile batch 2", "tile batch 1", "tile patch [6, 16, 16]",
                                                       "tile patch [6, 14, 14]"]
    patch = state["patch_size"]
    assert math.prod(patch) <= 8 * 12 * 16 and all(p % d == 0 for p, d in zip(patch, [1, 2, 2]))
    reduced = replace(settings, tile_batch=1, patch_size=tuple(patch))
    torch.testing.assert_close(logits, sliding_window_logits(network, data, 4, reduced))
    model.network.calls.clear()
    window_logits(model, data, settings, log=messages.append)        # the next case: no failed attempt
    assert all(shape[0] == 1 and list(shape[2:]) == patch for shape in model.network.calls)


def test_no_room_even_for_the_smallest_tile_is_a_user_error():
    model, _ = _model(limit=0)
    # a small first tile: 4 shrinks to the smallest instead of ~20 (each runs oom.release's gc.collect)
    with pytest.raises(UserError, match=r"even with one tile of \[1, 2, 2\]"):
        window_logits(model, np.zeros((1, 8, 16, 16), np.float32), WindowSettings((2, 4, 4)), log=lambda m: None)
