"""Checkpoints: weights_only, atomic writes, the plan check, and the RNG state round trip."""

import random

import numpy as np
import pytest
import torch
from training_data import TINY_ARCH

from segkit.errors import UserError
from segkit.jsonio import canonical_sha256
from segkit.models import checkpoint as ckpt


def _payload(entry):
    return {"format": ckpt.FORMAT, "network_state": {"w": torch.arange(3.0)}, "architecture": entry["architecture"],
            "in_channels": 4, "num_outputs": 4, "configuration": "3d_fullres",
            "plans_sha256": canonical_sha256(entry), "epoch": 3, "rng_state": ckpt.rng_state()}


ENTRY = {"patch_size": [32, 64, 64], "batch_size": 4, "architecture": dict(TINY_ARCH, features_per_stage=[32, 64, 128])}


def test_checkpoint_round_trip_with_weights_only_and_rng_state(tmp_path):
    np.random.seed(3)
    random.seed(3)
    torch.manual_seed(3)
    ckpt.save_checkpoint(tmp_path / "c.pt", _payload(ENTRY))
    expected = (np.random.rand(), random.random(), torch.rand(1).item())
    loaded = ckpt.load_checkpoint(tmp_path / "c.pt", canonical_sha256(ENTRY))
    assert loaded["epoch"] == 3 and torch.equal(loaded["network_state"]["w"], torch.arange(3.0))
    torch.load(tmp_path / "c.pt", weights_only=True)            # no pickle-only objects inside
    ckpt.set_rng_state(loaded["rng_state"])
    assert (np.random.rand(), random.random(), torch.rand(1).item()) == expected
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]      # no temp files left


def test_checkpoint_from_another_plan_or_corrupt_is_a_user_error(tmp_path):
    ckpt.save_checkpoint(tmp_path / "c.pt", _payload(ENTRY))
    other = dict(ENTRY, patch_size=[16, 64, 64])
    with pytest.raises(UserError, match="different plan"):
        ckpt.load_checkpoint(tmp_path / "c.pt", canonical_sha256(other))
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="cannot read checkpoint"):
        ckpt.load_checkpoint(tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="required keys"):
        ckpt.save_checkpoint(tmp_path / "x.pt", {"format": ckpt.FORMAT})
