"""Opening a model package (segkit.models.unpack): verified extraction into the cache, reuse of an intact one, and
refusal of tampered, unsafe, unlisted, missing or truncated members with nothing extracted."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
import torch

from segkit.errors import UserError
from segkit.inference.model import load_model
from segkit.models.unpack import unpack_model


def _rewrite(source: Path, target: Path, change: dict[str, bytes | None], add: dict[str, bytes] | None = None) -> Path:
    """Copy a zip, replacing (bytes) or dropping (None) members and adding new ones."""
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for info in old.infolist():
            data = change.get(info.filename, old.read(info.filename))
            if data is not None:
                new.writestr(info.filename, data)
        for name, data in (add or {}).items():
            new.writestr(name, data)
    return target


def test_unpacked_package_loads_like_the_model_folder(package, tmp_path):
    model_dir, zip_path = package
    unpacked = unpack_model(zip_path, cache=tmp_path / "cache")
    assert unpacked.model_dir.name == "3d_fullres" and unpacked.folds == {"3d_fullres": ["0", "2"]}
    assert unpacked.postprocessing == {"foreground_lcc": True, "lcc_classes": {}}
    loaded = load_model(unpacked.model_dir, None, unpacked.folds["3d_fullres"], unpacked.checkpoint, "cpu")
    original = load_model(model_dir, None, ["0", "2"], "final", "cpu")
    for mine, theirs in zip(loaded.fold_states, original.fold_states):
        assert all(torch.equal(mine[key], theirs[key]) for key in theirs)
    again = unpack_model(zip_path, cache=tmp_path / "cache")  # reuses the intact extraction
    assert again.model_dir == unpacked.model_dir


def test_tampered_member_is_refused(package, tmp_path):
    _, zip_path = package
    with zipfile.ZipFile(zip_path) as archive:
        plans = json.loads(archive.read("3d_fullres/plans.json"))
    plans["num_channels"] = 3
    tampered = _rewrite(zip_path, tmp_path / "tampered.zip", {"3d_fullres/plans.json": json.dumps(plans).encode()})
    with pytest.raises(UserError, match="checksum mismatch for 3d_fullres/plans.json"):
        unpack_model(tampered, cache=tmp_path / "cache")
    assert not list((tmp_path / "cache").rglob("plans.json")), "nothing extracted from a refused package"


def test_cached_extraction_that_was_modified_is_replaced(package, tmp_path):
    _, zip_path = package
    unpacked = unpack_model(zip_path, cache=tmp_path / "cache")
    (unpacked.model_dir / "plans.json").write_text("{}")
    unpack_model(zip_path, cache=tmp_path / "cache")
    assert json.loads((unpacked.model_dir / "plans.json").read_text())["num_channels"] == 2


@pytest.mark.parametrize("name", ["../evil.json", "/abs/evil.json", "fold_0/../../evil.json", "a\\b.json"])
def test_unsafe_member_names_are_refused(package, tmp_path, name):
    _, zip_path = package
    with zipfile.ZipFile(zip_path) as archive:
        manifest = json.loads(archive.read("manifest.json"))
    manifest["files"][name] = {"sha256": "0" * 64, "bytes": 1}
    bad = _rewrite(zip_path, tmp_path / "bad.zip", {"manifest.json": json.dumps(manifest).encode()}, {name: b"x"})
    with pytest.raises(UserError, match="unsafe member name"):
        unpack_model(bad, cache=tmp_path / "cache")
    assert not (tmp_path / "evil.json").exists()


def test_unlisted_or_missing_members_are_refused(package, tmp_path):
    _, zip_path = package
    extra = _rewrite(zip_path, tmp_path / "extra.zip", {}, {"3d_fullres/fold_1/checkpoint_final.pt": b"x"})
    with pytest.raises(UserError, match=r"unlisted \['3d_fullres/fold_1/checkpoint_final.pt'\]"):
        unpack_model(extra, cache=tmp_path / "cache")
    missing = _rewrite(zip_path, tmp_path / "missing.zip", {"postprocessing.json": None})
    with pytest.raises(UserError, match=r"missing \['postprocessing.json'\]"):
        unpack_model(missing, cache=tmp_path / "cache")


def test_truncated_package_is_refused(package, tmp_path):
    _, zip_path = package
    truncated = tmp_path / "truncated.zip"
    truncated.write_bytes(zip_path.read_bytes()[: zip_path.stat().st_size * 2 // 3])
    with pytest.raises(UserError, match="truncated or damaged"):
        unpack_model(truncated, cache=tmp_path / "cache")
