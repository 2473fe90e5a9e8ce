"""Patch loader: memory-mapped cases, padding, foreground oversampling, seeding, workers, 2D slicing."""

import json

import numpy as np
import pytest
import torch

from segkit.errors import UserError
from segkit.training.augmentation import build_transform, sample_size_for
from segkit.training.loader import (
    Case,
    EpochBatches,
    PatchSampler,
    epoch_loader,
    make_batch,
    open_case,
    preprocessed_case_ids,
    with_slice_axis_first,
)


def _write_case(folder, case_id, shape=(12, 20, 18), channels=2, seed=0):
    """A preprocessed case with one small foreground blob and its class_locations."""
    rng = np.random.default_rng(seed)
    data = rng.standard_normal((channels, *shape)).astype(np.float32)
    seg = np.zeros(shape, dtype=np.int16)
    seg[0, :, :] = -1
    seg[8:10, 15:18, 2:5] = 1
    np.save(folder / f"{case_id}.npy", data)
    np.save(folder / f"{case_id}_seg.npy", seg)
    locations = np.argwhere(seg == 1).tolist()
    (folder / f"{case_id}.json").write_text(json.dumps({"case_id": case_id, "class_locations": {"1": locations}}))


@pytest.fixture()
def cases(tmp_path):
    for i in range(2):
        _write_case(tmp_path, f"c{i}", seed=i)
    return [open_case(tmp_path, c, 2) for c in preprocessed_case_ids(tmp_path)]


def test_cases_are_memory_mapped_and_checked(cases, tmp_path):
    assert isinstance(cases[0].data, np.memmap)
    (tmp_path / "bad.npy").write_bytes(b"\x93NUMPY garbage")
    np.save(tmp_path / "bad_seg.npy", np.zeros((12, 20, 18), np.int16))
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(UserError, match="corrupt"):
        open_case(tmp_path, "bad")
    with pytest.raises(UserError, match="channels"):
        open_case(tmp_path, "c0", num_channels=4)


def test_forced_foreground_in_last_third_and_padding(cases):
    sampler = PatchSampler(cases, [16, 24, 24], batch_size=3)      # larger than the 12x20x18 volume
    for seed in range(5):
        batch = sampler.sample(np.random.default_rng(seed))
        assert batch["data"].shape == (3, 2, 16, 24, 24) and batch["seg"].shape == (3, 1, 16, 24, 24)
        assert (batch["seg"][2] == 1).any()                      # last third: foreground forced
        assert (batch["seg"] == -1).any()                        # padding and outside-mask voxels
    small = PatchSampler(cases, [4, 4, 4], batch_size=3)
    hits = [(small.sample(np.random.default_rng(s))["seg"][2] == 1).any() for s in range(10)]
    assert all(hits)                                             # tiny patches still centred on foreground


def test_sample_grows_around_the_patch_so_border_foreground_and_border_patches_are_drawn():
    """A sample larger than the patch (room for a spatial transform) is placed around the patch a
    patch-sized sampler would draw: its centre crop holds the forced border foreground voxel, and
    uniform patches reach the volume's border (the larger sample placed inside the volume did neither)."""
    shape, patch = (40, 40, 40), [16, 16, 16]
    seg = np.zeros(shape, dtype=np.int16)
    seg[1:3, 1:3, 1:3] = 1                                       # foreground in a corner
    case = Case("c", np.arange(np.prod(shape), dtype=np.float32).reshape(1, *shape), seg,
                {"class_locations": {"1": np.argwhere(seg == 1).tolist()}})
    size = sample_size_for(patch, "fast")
    assert all(s > p for s, p in zip(size, patch))
    inner = tuple(slice((s - p) // 2, (s - p) // 2 + p) for s, p in zip(size, patch))
    forced = PatchSampler([case], size, 1, 3, 1.0, patch)
    plain = PatchSampler([case], patch, 1, 3, 1.0)
    for seed in range(5):
        grown, same = (s.sample(np.random.default_rng(seed)) for s in (forced, plain))
        assert (grown["seg"][0, 0][inner] == 1).any()
        assert np.array_equal(grown["data"][0, 0][inner], same["data"][0, 0])   # the patch is what plain draws
        assert (grown["seg"][0, 0] == -1).any()                                   # outside the volume: padded
    uniform = PatchSampler([case], size, 1, 3, 0.0, patch)
    first_voxels = [int(uniform.sample(np.random.default_rng(seed))["data"][0, 0][inner].min()) for seed in range(200)]
    lowers = np.array([np.unravel_index(v, shape) for v in first_voxels])   # the patches' first voxels
    assert lowers.min(0).tolist() == [0, 0, 0]                   # patches start at the border along every axis
    assert lowers.max(0).tolist() == [s - p for s, p in zip(shape, patch)]


def _batches(cases, workers, epoch=3, rank=0):
    patch = [8, 12, 12]
    transform = build_transform(patch, [1, 2], [[1, 1, 1], [1, 2, 2]], "softmax", augment="full")
    sampler = PatchSampler(cases, sample_size_for(patch, "full"), 2)
    return list(epoch_loader(EpochBatches(sampler, transform, seed=7, epoch=epoch, rank=rank, num_batches=4), workers))


def test_batches_are_seeded_independent_of_workers_and_distinct_per_rank_and_epoch(cases):
    in_process, background = _batches(cases, 0), _batches(cases, 2)
    assert len(in_process) == len(background) == 4
    for a, b in zip(in_process, background):
        assert torch.equal(a["data"], b["data"])
        assert all(torch.equal(x, y) for x, y in zip(a["target"], b["target"]))
    assert in_process[0]["data"].shape == (2, 2, 8, 12, 12)
    assert [tuple(t.shape) for t in in_process[0]["target"]] == [(2, 1, 8, 12, 12), (2, 1, 8, 6, 6)]
    assert in_process[0]["target"][0].min() >= 0                  # -1 mapped to background
    assert not torch.equal(in_process[0]["data"], _batches(cases, 0, rank=1)[0]["data"])
    assert not torch.equal(in_process[0]["data"], _batches(cases, 0, epoch=4)[0]["data"])


def test_two_dimensional_sampling_along_a_slice_axis(cases):
    moved = [with_slice_axis_first(c, 2) for c in cases]
    assert moved[0].data.shape == (2, 18, 12, 20)
    loc = np.asarray(moved[0].properties["class_locations"]["1"])
    assert (np.asarray(moved[0].seg)[tuple(loc.T)] == 1).all()
    sampler = PatchSampler(moved, [8, 8], batch_size=3, spatial_dims=2)
    batch = sampler.sample(np.random.default_rng(0))
    assert batch["data"].shape == (3, 2, 8, 8) and (batch["seg"][2] == 1).any()


def test_sparse_cases_centre_unforced_patches_on_annotated_voxels(tmp_path):
    """With an ignore label, patches not forced onto foreground still land on annotated voxels (nnU-Net's rule)."""
    shape, ignore = (40, 40, 40), 2
    seg = np.full(shape, ignore, dtype=np.int16)
    seg[31, 30:36, 30:36] = 0                 # one annotated background slice patch in a corner
    seg[31, 33, 33] = 1
    np.save(tmp_path / "s.npy", np.zeros((1, *shape), np.float32))
    np.save(tmp_path / "s_seg.npy", seg)
    annotated = np.argwhere((seg >= 0) & (seg != ignore)).tolist()
    (tmp_path / "s.json").write_text(json.dumps({"class_locations": {"1": [[31, 33, 33]]},
                                                 "annotated_locations": annotated}))
    case = open_case(tmp_path, "s", 1)
    assert case.annotated_locations.shape == (36, 3)
    sampler = PatchSampler([case], [6, 6, 6], batch_size=3, foreground_fraction=0.0)   # nothing forced
    batches = [sampler.sample(np.random.default_rng(s))["seg"] for s in range(10)]
    assert all(((b >= 0) & (b != ignore)).any(axis=(1, 2, 3, 4)).all() for b in batches)
    # the same case without annotated_locations (dense labels): uniform patches mostly miss the corner
    dense = PatchSampler([open_case(tmp_path, "s", 1)], [6, 6, 6], batch_size=3, foreground_fraction=0.0)
    dense.cases[0].properties.pop("annotated_locations")
    misses = [not ((b >= 0) & (b != ignore)).any() for s in range(10)
              for b in dense.sample(np.random.default_rng(s))["seg"]]
    assert sum(misses) > 15
    # 2D configurations: the locations follow the slice axis
    moved = with_slice_axis_first(case, 2)
    assert moved.annotated_locations.tolist()[0] == [annotated[0][2], annotated[0][0], annotated[0][1]]


def test_fast_augmentation_is_seeded_per_batch():
    rng = np.random.default_rng(3)
    shape = (1, 40, 44, 36)
    case = Case("c", rng.standard_normal(shape).astype(np.float32), rng.integers(0, 3, shape[1:]).astype(np.int16),
                {"class_locations": {"1": [[20, 22, 18]]}})
    patch = [16, 16, 16]
    sampler = PatchSampler([case], sample_size_for(patch, "fast"), 4, 3, 0.5)
    transform = build_transform(patch, [0, 1, 2], [[1, 1, 1]], "softmax", augment="fast", elastic=True)
    first, again, other = (make_batch(sampler, transform, seed) for seed in (11, 11, 12))
    assert first["data"].shape == (4, 1, 16, 16, 16)
    assert np.array_equal(first["data"], again["data"]) and np.array_equal(first["target"][0], again["target"][0])
    assert not np.array_equal(first["data"], other["data"])


def test_cascade_cases_carry_the_previous_stage_through_sampling_and_augmentation():
    """The previous labels are cropped with the labels (0 outside the case), moved by the spatial transform
    like the labels and end as one-hot data channels; the target comes from the real labels only."""
    rng = np.random.default_rng(1)
    shape = (14, 20, 18)
    seg = np.zeros(shape, dtype=np.int16)
    seg[5:9, 6:12, 6:12] = 1
    previous = np.zeros(shape, dtype=np.int16)
    previous[4:10, 5:13, 5:13] = 2
    case = Case("c", rng.standard_normal((1, *shape)).astype(np.float32), seg,
                {"class_locations": {"1": np.argwhere(seg == 1).tolist()}}, previous=previous)
    sampler = PatchSampler([case], [16, 24, 24], 2, 3, 0.5)
    batch = sampler.sample(np.random.default_rng(0))
    assert batch["seg"].shape == (2, 2, 16, 24, 24) and batch["seg"][:, 1].min() == 0   # padding: background
    assert batch["seg"][:, 0].min() == -1
    patch = [8, 16, 16]
    for augment in ("full", "none"):
        transform = build_transform(patch, [0, 1, 2], [[1, 1, 1]], "softmax", augment=augment,
                                    previous_classes=[[1], [2]])
        sampler = PatchSampler([case], sample_size_for(patch, augment), 2, 3, 0.5)
        out = make_batch(sampler, transform, 4)
        assert out["data"].shape == (2, 3, *patch)
        assert set(np.unique(out["data"][:, 1:])) <= {0.0, 1.0} and out["data"][:, 2].any()
        assert out["target"][0].shape == (2, 1, *patch) and set(np.unique(out["target"][0])) <= {0.0, 1.0}
        if augment == "none":     # unperturbed: the previous labels' channel 2 covers every target voxel
            assert np.all(out["data"][:, 2:3][out["target"][0] == 1] == 1)
