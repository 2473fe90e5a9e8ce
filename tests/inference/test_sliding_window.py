"""Sliding-window inference: weighting, tiling, padding, mirroring, 2D slicing, region conversion."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from segkit.inference.sliding_window import (
    WindowSettings,
    gaussian_importance_map,
    mirror_combinations,
    nnunet_fp16_weights,
    nnunet_gaussian_map,
    sliding_window_logits,
    tile_slices,
    tile_starts_along,
)


def pointwise_network(in_channels: int, out_channels: int, dims: int = 3, seed: int = 0) -> nn.Module:
    """A 1x1(x1) convolution: tiling, padding and mirroring must reproduce it exactly."""
    torch.manual_seed(seed)
    conv = (nn.Conv3d if dims == 3 else nn.Conv2d)(in_channels, out_channels, 1)
    return conv.eval()


class XRamp(nn.Module):
    """Ignores the input; output channel 0 is the x index inside the tile (not mirror-equivariant)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        width = x.shape[-1]
        ramp = torch.arange(width, dtype=torch.float32).expand(*x.shape[:1], 1, *x.shape[2:])
        return ramp.clone()


def test_gaussian_map_peaks_at_centre_and_stays_positive():
    weights = gaussian_importance_map((8, 16, 12))
    assert weights.shape == (8, 16, 12)
    assert weights.dtype == np.float32
    assert weights.max() == pytest.approx(1.0, abs=1e-3)
    assert weights.min() > 0
    assert weights[4, 8, 6] > weights[0, 0, 0]
    np.testing.assert_allclose(weights, weights[::-1, ::-1, ::-1], rtol=1e-6)


def test_tile_starts_cover_axis_with_at_most_half_patch_step():
    for size, tile in [(100, 32), (33, 32), (64, 32), (7, 7), (5, 8), (45, 1)]:
        starts = tile_starts_along(size, tile, 0.5)
        assert starts[0] == 0
        assert starts[-1] == max(0, size - tile)
        assert all(b - a <= max(1, tile // 2) for a, b in zip(starts, starts[1:]))
    assert tile_starts_along(45, 1, 0.5) == list(range(45))
    assert len(tile_slices((40, 40, 40), (16, 16, 16), 0.5)) == 4 ** 3
    assert len(tile_slices((40, 40, 40), (16, 16, 16), 1.0)) == 3 ** 3


def test_mirror_combinations_are_all_subsets():
    combos = mirror_combinations([0, 1, 2])
    assert len(combos) == 8 and combos[0] == () and (0, 1, 2) in combos


@pytest.mark.parametrize("shape", [(19, 37, 26), (5, 9, 7), (16, 16, 16)])
@pytest.mark.parametrize("tta", [False, True])
def test_tiling_reproduces_pointwise_network_exactly(shape, tta):
    network = pointwise_network(2, 3)
    data = torch.randn(2, *shape)
    settings = WindowSettings((8, 16, 12), 0.5, (0, 1, 2) if tta else (), tile_batch=3)
    logits = sliding_window_logits(network, data, 3, settings)
    assert logits.shape == (3, *shape)
    with torch.no_grad():
        expected = network(data[None])[0]
    torch.testing.assert_close(logits, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("slice_axis", [0, 2])
def test_2d_configuration_runs_slice_by_slice(slice_axis):
    network = pointwise_network(2, 3, dims=2)
    data = torch.randn(2, 6, 21, 11)
    settings = WindowSettings((16, 8), 0.5, (0, 1), tile_batch=5, slice_axis=slice_axis)
    logits = sliding_window_logits(network, data, 3, settings)
    assert logits.shape == (3, 6, 21, 11)
    moved = data.movedim(1 + slice_axis, 1)
    with torch.no_grad():
        per_slice = torch.stack([network(moved[:, s][None])[0] for s in range(moved.shape[1])], dim=1)
    torch.testing.assert_close(logits, per_slice.movedim(1, 1 + slice_axis), rtol=1e-4, atol=1e-5)


def test_mirroring_flips_and_flips_back_along_the_planned_axes():
    data = torch.zeros(1, 8, 8, 10)
    plain = sliding_window_logits(XRamp(), data, 1, WindowSettings((8, 8, 10), mirror_axes=()))
    torch.testing.assert_close(plain[0, 3, 4], torch.arange(10, dtype=torch.float32))
    mirrored = sliding_window_logits(XRamp(), data, 1, WindowSettings((8, 8, 10), mirror_axes=(2,)))
    torch.testing.assert_close(mirrored, torch.full_like(mirrored, 4.5))
    other_axes = sliding_window_logits(XRamp(), data, 1, WindowSettings((8, 8, 10), mirror_axes=(0, 1)))
    torch.testing.assert_close(other_axes, plain)


def test_gaussian_weighting_favours_tile_centres():
    class TileConstant(nn.Module):
        """Outputs 0 for the first tile of each batch and 1 for the others (tile_batch=1: per call)."""

        calls = 0

        def forward(self, x):
            TileConstant.calls += 1
            return torch.full((x.shape[0], 1, *x.shape[2:]), float(TileConstant.calls - 1))

    data = torch.zeros(1, 8, 8, 24)
    logits = sliding_window_logits(TileConstant(), data, 1, WindowSettings((8, 8, 16), 0.5, (), tile_batch=1))
    # two tiles along x (starts 0 and 8): left edge only tile 0, right edge only tile 1, middle blended
    assert logits[0, 4, 4, 0] == pytest.approx(0.0)
    assert logits[0, 4, 4, 23] == pytest.approx(1.0)
    middle = logits[0, 4, 4, 8:16]
    assert torch.all(middle[1:] >= middle[:-1]) and 0 < middle[4] < 1


def nnunet_v2_sliding_window(network: nn.Module, data: torch.Tensor, patch: tuple[int, ...],
                             mirror_axes: tuple[int, ...]) -> torch.Tensor:
    """nnU-Net v2's `_internal_predict_sliding_window_return_logits` on the CPU, written after its source:
    float16 sums, tile weights of peak 10 in float16, one tile at a time, its mirroring loop."""
    from itertools import combinations

    from scipy.ndimage import gaussian_filter

    delta = np.zeros(patch)
    delta[tuple(p // 2 for p in patch)] = 1
    gaussian = gaussian_filter(delta, [p / 8 for p in patch], 0, mode="constant", cval=0)
    gaussian /= np.max(gaussian) / 10
    gaussian = torch.from_numpy(gaussian).to(torch.float16)
    gaussian[gaussian == 0] = torch.min(gaussian[gaussian != 0])
    steps = []
    for size, tile in zip(data.shape[1:], patch):
        count = int(np.ceil((size - tile) / (tile * 0.5))) + 1
        step = (size - tile) / (count - 1) if count > 1 else 99999999999
        steps.append([int(np.round(step * i)) for i in range(count)])
    logits = torch.zeros((3, *data.shape[1:]), dtype=torch.half)
    n_predictions = torch.zeros(data.shape[1:], dtype=torch.half)
    axes = [m + 2 for m in mirror_axes]
    combos = [c for i in range(len(axes)) for c in combinations(axes, i + 1)]
    with torch.inference_mode():
        for sx in steps[0]:
            for sy in steps[1]:
                for sz in steps[2]:
                    sl = (slice(None), *[slice(s, s + t) for s, t in zip((sx, sy, sz), patch)])
                    x = data[sl][None]
                    prediction = network(x)
                    for combo in combos:
                        prediction += torch.flip(network(torch.flip(x, combo)), combo)
                    prediction /= len(combos) + 1
                    prediction = prediction[0]
                    prediction *= gaussian
                    logits[sl] += prediction
                    n_predictions[sl[1:]] += gaussian
    torch.div(logits, n_predictions, out=logits)
    return logits


def test_fp16_accumulation_gives_nnunets_logits_bit_for_bit():
    """An imported nnU-Net model's window ('fp16', nnU-Net's weights) equals nnU-Net v2's float16 loop exactly."""
    torch.manual_seed(0)
    network = nn.Conv3d(2, 3, 3, padding=1).eval()
    data = torch.randn(2, 13, 21, 19)
    patch = (8, 12, 12)
    expected = nnunet_v2_sliding_window(network, data, patch, (0, 1, 2))
    settings = WindowSettings(patch, 0.5, (0, 1, 2), tile_batch=1, tile_weights="nnunet_gaussian",
                              accumulation="fp16")
    got = sliding_window_logits(network, data.numpy(), 3, settings)
    assert got.dtype == torch.float32 and torch.equal(got, expected.float())
    fp32 = sliding_window_logits(network, data.numpy(), 3, WindowSettings(patch, 0.5, (0, 1, 2), tile_batch=1,
                                                                         tile_weights="nnunet_gaussian"))
    difference = (fp32 - got).abs()
    # float32 sums are not what nnU-Net computes: most voxels differ by float16 rounding, but where only
    # tile borders reach, nnU-Net's float16 weights underflow and its logits lose most of their value
    assert float(difference.median()) < 1e-3 < float(difference.max())


def test_fp16_weights_are_nnunets_scaled_gaussian():
    weights = nnunet_fp16_weights((4, 8, 8))
    assert weights.dtype == torch.float16 and float(weights.max()) == 10.0 and float(weights.min()) > 0
    np.testing.assert_allclose(weights.float().numpy() / 10, nnunet_gaussian_map((4, 8, 8)), rtol=2e-3, atol=1e-4)


def test_fp16_accumulation_needs_nnunets_weights():
    settings = WindowSettings((4, 4, 4), accumulation="fp16")
    with pytest.raises(ValueError, match="nnunet_gaussian"):
        sliding_window_logits(pointwise_network(1, 2), np.zeros((1, 4, 4, 4), np.float32), 2, settings)
