"""SEG UIDs: a pure function of the source series and the model, whatever folder the model lies in."""

from __future__ import annotations

import shutil

import torch

from segkit.pacs.predict import UnitPredictor, model_identity, seg_uids
from segkit.pacs.store import Storage, derived_uid, valid_uid


def test_derived_uids_are_valid_stable_and_distinct():
    uid = derived_uid("a", "b")
    assert valid_uid(uid) and uid.startswith("2.25.") and len(uid) <= 64
    assert uid == derived_uid("a", "b") != derived_uid("ab", "")


def test_the_model_identity_follows_the_weights_not_the_folder(tmp_path, one_channel_model):
    from segkit.pacs.config import ModelConfig

    copy = tmp_path / "elsewhere" / "3d_fullres"
    shutil.copytree(one_channel_model, copy)
    storage = Storage(tmp_path / "storage")
    original = UnitPredictor(ModelConfig(str(one_channel_model), tta=False), storage)
    moved = UnitPredictor(ModelConfig(str(copy), tta=False), storage)
    assert original.identity == moved.identity
    assert seg_uids("1.2.3", original.identity) == seg_uids("1.2.3", moved.identity)
    assert seg_uids("1.2.3", original.identity)[0] != seg_uids("1.2.4", original.identity)[0]
    checkpoint = copy / "fold_0" / "checkpoint_final.pt"
    payload = torch.load(checkpoint, weights_only=True)
    next(iter(payload["network_state"].values())).add_(1.0)
    torch.save(payload, checkpoint)
    retrained = UnitPredictor(ModelConfig(str(copy), tta=False), storage)
    assert model_identity(retrained.engine) != original.identity      # other weights: another SEG instance
