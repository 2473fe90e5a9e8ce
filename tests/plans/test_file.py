"""segkit.plans.file: plans.json's one reader and writer; a malformed file is refused naming it, nothing half-written."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from segkit.errors import UserError
from segkit.plans import (
    read_plans,
    write_plans,
)


@pytest.mark.parametrize("mutate, message", [
    (lambda p: p.update(label_mode="softmaxx"), "label_mode"),
    (lambda p: p.update(schema_version=99), "schema_version"),
    (lambda p: p["configurations"]["3d_fullres"].update(target_spacing=[1, 0, 1]), "target_spacing"),
    (lambda p: p["configurations"]["3d_fullres"].update(patch_size=[32, 32]), "patch_size"),
    (lambda p: p["configurations"]["3d_fullres"]["architecture"].pop("strides"), "strides"),
    (lambda p: p.pop("num_outputs"), "num_outputs"),
])
def test_malformed_plans_name_the_file(planned: tuple[dict, Path], tmp_path: Path, mutate, message: str) -> None:
    plans = copy.deepcopy(planned[0])
    mutate(plans)
    path = tmp_path / "plans.json"
    path.write_text(json.dumps(plans))
    with pytest.raises(UserError) as err:
        read_plans(path)
    assert message in err.value.message and err.value.path == str(path)
    with pytest.raises(UserError):
        write_plans(tmp_path / "out" / "plans.json", plans)
    assert not (tmp_path / "out" / "plans.json").exists()



def test_reader_names_the_file_or_the_source(tmp_path: Path) -> None:
    """A truncated file, one without a required key, one without what the caller needs: each names the file."""
    path = tmp_path / "plans.json"
    path.write_text("{truncated")
    with pytest.raises(UserError, match="plans file is not valid JSON") as err:
        read_plans(path, "plans file")
    assert err.value.path == str(path)
    path.write_text(json.dumps({"configurations": {}, "note": "no num_channels"}))
    with pytest.raises(UserError, match="lacks 'num_channels'"):
        read_plans(path)
    path.write_text(json.dumps({"num_channels": 1, "num_outputs": 2}))
    assert read_plans(path).configurations == {}
    with pytest.raises(UserError, match=r"not a segkit plans file \(needs configurations, channel_names\)") as err:
        read_plans(path, needs=("configurations", "channel_names"), source=tmp_path)
    assert err.value.path == str(tmp_path)
