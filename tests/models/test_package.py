"""`segkit export-model` packages and their verification: checksums, member names, tampering, truncation."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
import torch
from inference_fixtures import make_model_dir

from segkit.cli import main
from segkit.errors import UserError
from segkit.inference.model import load_model
from segkit.models.package import sha256_of
from segkit.models.unpack import unpack_model


@pytest.fixture(scope="module")
def package(tmp_path_factory) -> tuple[Path, Path]:
    """(model folder with folds 0-2 and a find_best.json in its work dir, package of folds 0 and 2)."""
    work = tmp_path_factory.mktemp("work")
    model_dir = make_model_dir(work, num_channels=2, folds=("0", "1", "2"))
    (work / "find_best.json").write_text(json.dumps({"best": {"members": ["3d_fullres"]},
                                                     "postprocessing": {"foreground_lcc": True, "lcc_classes": {}}}))
    zip_path = work.parent / "model.zip"
    assert main(["export-model", str(model_dir), "-o", str(zip_path), "-f", "0", "2"]) == 0
    return model_dir, zip_path


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


def test_package_holds_chosen_folds_postprocessing_and_checksums(package):
    model_dir, zip_path = package
    with zipfile.ZipFile(zip_path) as archive:
        names = sorted(archive.namelist())
        manifest = json.loads(archive.read("manifest.json"))
        assert names == ["3d_fullres/dataset.json", "3d_fullres/fold_0/checkpoint_final.pt",
                         "3d_fullres/fold_2/checkpoint_final.pt", "3d_fullres/plans.json", "manifest.json",
                         "postprocessing.json"]
        assert manifest["folds"] == {"3d_fullres": ["0", "2"]} and manifest["checkpoint"] == "final"
        assert manifest["configurations"] == ["3d_fullres"]
        assert manifest["postprocessing"] == {"foreground_lcc": True, "lcc_classes": {}}
        assert manifest["segkit_version"]
        source = {"3d_fullres/plans.json": model_dir / "plans.json", "3d_fullres/fold_2/checkpoint_final.pt":
                  model_dir / "fold_2" / "checkpoint_final.pt"}
        for name, path in source.items():
            assert manifest["files"][name]["sha256"] == sha256_of(path)
            assert archive.read(name) == path.read_bytes()


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


def test_pickled_checkpoint_is_not_packaged(tmp_path):
    model_dir = make_model_dir(tmp_path / "work", num_channels=2)
    path = model_dir / "fold_0" / "checkpoint_final.pt"
    payload = torch.load(path, weights_only=True)
    payload["epoch"] = Path("needs/pickle")  # a class instance: refused by weights_only loading
    torch.save(payload, path)
    assert main(["export-model", str(model_dir), "-o", str(tmp_path / "model.zip")]) == 2
    assert not (tmp_path / "model.zip").exists()
