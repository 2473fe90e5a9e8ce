"""`segkit export-model` packages: the chosen folds, post-processing and checksums; checkpoints needing pickle refused."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import torch
from inference_fixtures import make_model_dir

from segkit.cli import main
from segkit.models.package import sha256_of


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


def test_pickled_checkpoint_is_not_packaged(tmp_path):
    model_dir = make_model_dir(tmp_path / "work", num_channels=2)
    path = model_dir / "fold_0" / "checkpoint_final.pt"
    payload = torch.load(path, weights_only=True)
    payload["epoch"] = Path("needs/pickle")  # a class instance: refused by weights_only loading
    torch.save(payload, path)
    assert main(["export-model", str(model_dir), "-o", str(tmp_path / "model.zip")]) == 2
    assert not (tmp_path / "model.zip").exists()
