"""The preprocessed store: arrays saved and loaded by their owner; a corrupt file is a user error."""

from __future__ import annotations

import numpy as np
import pytest

from segkit.errors import UserError
from segkit.preprocessing.store import load_array, save_array


def test_preprocessed_store_owner(tmp_path):
    save_array(tmp_path / "c.npy", np.arange(6, dtype=np.int16).reshape(2, 3))
    assert load_array(tmp_path / "c.npy").tolist() == [[0, 1, 2], [3, 4, 5]]
    (tmp_path / "bad.npy").write_bytes(b"not numpy")
    with pytest.raises(UserError, match="corrupt preprocessed file"):
        load_array(tmp_path / "bad.npy")
