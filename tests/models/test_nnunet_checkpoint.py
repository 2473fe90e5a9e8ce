"""Reading nnU-Net v2 checkpoints without running code (segkit.models.nnunet_checkpoint): numpy scalars and dtypes
allowed, anything else refused naming the class, a damaged or foreign file one clear UserError."""

from __future__ import annotations

import fractions
from pathlib import Path

import numpy as np
import pytest
import torch

from segkit.errors import UserError
from segkit.models.nnunet_checkpoint import checkpoint_allowlist, read_nnunet_checkpoint


def _checkpoint(**extra) -> dict:
    """A checkpoint as nnU-Net v2 saves it: weights, numpy float64 scalars in the log, a dtype, a torch.device."""
    weights = {"encoder.stages.0.0.convs.0.conv.weight": torch.arange(24, dtype=torch.float32).reshape(2, 1, 3, 4)}
    return {"network_weights": weights, "_best_ema": np.float64(0.75), "current_epoch": 12,
            "logging": {"ema_fg_dice": [np.float64(0.5), np.float64(0.75)], "dtype": np.dtype("float32")},
            "init_args": {"device": torch.device("cpu")}, "inference_allowed_mirroring_axes": (0, 1, 2), **extra}


def _save(path: Path, checkpoint: object) -> Path:
    torch.save(checkpoint, path)
    return path


def test_numpy_scalars_dtypes_and_devices_load_with_the_weights(tmp_path):
    loaded = read_nnunet_checkpoint(_save(tmp_path / "checkpoint_final.pth", _checkpoint()))
    torch.testing.assert_close(loaded["network_weights"]["encoder.stages.0.0.convs.0.conv.weight"],
                               torch.arange(24, dtype=torch.float32).reshape(2, 1, 3, 4))
    assert float(loaded["_best_ema"]) == 0.75 and [float(v) for v in loaded["logging"]["ema_fg_dice"]] == [0.5, 0.75]
    assert loaded["logging"]["dtype"] == np.dtype("float32") and loaded["inference_allowed_mirroring_axes"] == (0, 1, 2)


def test_a_class_outside_the_allowlist_is_named(tmp_path):
    path = _save(tmp_path / "checkpoint_final.pth", _checkpoint(extra=fractions.Fraction(1, 3)))
    with pytest.raises(UserError, match=r"fractions\.Fraction.*refused because loading them would run code") as error:
        read_nnunet_checkpoint(path)
    assert error.value.path == str(path)


@pytest.mark.parametrize("content, words", [
    (b"not a checkpoint at all", "cannot load nnU-Net checkpoint"),
    ({"state_dict": {}}, "no 'network_weights' state dict"),
    ([1, 2, 3], "no 'network_weights' state dict"),
])
def test_a_damaged_or_foreign_file_is_one_user_error(tmp_path, content, words):
    path = tmp_path / "checkpoint_final.pth"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        _save(path, content)
    with pytest.raises(UserError, match=words):
        read_nnunet_checkpoint(path)


def test_the_allowlist_holds_numpy_scalars_and_dtypes_only():
    names = {item[1] if isinstance(item, tuple) else f"{item.__module__}.{item.__qualname__}"
             for item in checkpoint_allowlist()}
    assert {"numpy.core.multiarray.scalar", "numpy._core.multiarray.scalar", "numpy.dtype"} <= names
    assert all(name.startswith("numpy") for name in names)
