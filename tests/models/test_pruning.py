"""pruning.json's owner: written with its format, read back checked, applied only to a network it fits."""

from __future__ import annotations

import json

import pytest
from torch import nn

from segkit.errors import UserError
from segkit.models.pruning import PRUNING_FORMAT, apply_pruning, read_pruning, write_pruning


class Nested(nn.Module):
    """A stand-in for UNet++: a depth and a settable prune_level."""

    def __init__(self, depth: int) -> None:
        super().__init__()
        self.depth, self.prune_level = depth, depth


def test_written_record_reads_back_and_sets_the_level(tmp_path) -> None:
    assert read_pruning(tmp_path) is None and apply_pruning(Nested(3), tmp_path) is None
    path = write_pruning(tmp_path, {"prune_level": 2, "depth": 3, "levels": [], "tolerance": 0.005})
    assert json.loads(path.read_text())["format"] == PRUNING_FORMAT
    assert read_pruning(tmp_path)["prune_level"] == 2
    network = Nested(3)
    assert apply_pruning(network, tmp_path) == 2 and network.prune_level == 2
    with pytest.raises(ValueError, match=r"lacks \['levels'\]"):
        write_pruning(tmp_path, {"prune_level": 2, "depth": 3})


def test_a_level_beyond_the_depth_or_another_network_is_refused_naming_the_file(tmp_path) -> None:
    path = write_pruning(tmp_path, {"prune_level": 4, "depth": 3, "levels": []})
    with pytest.raises(UserError, match="between 1 and depth") as err:
        read_pruning(tmp_path)
    assert err.value.path == str(path)
    write_pruning(tmp_path, {"prune_level": 1, "depth": 3, "levels": []})
    with pytest.raises(UserError, match=r"does not fit this network \(Nested\)"):
        apply_pruning(Nested(4), tmp_path)
    with pytest.raises(UserError, match="does not fit"):
        apply_pruning(nn.Linear(1, 1), tmp_path)
    path.write_text(json.dumps({"format": "other"}))
    with pytest.raises(UserError, match="not a segkit-pruning-1 file"):
        read_pruning(tmp_path)
