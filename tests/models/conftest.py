"""Fixtures of the model-package tests (tests/models/test_package.py, test_unpack.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from inference_fixtures import make_model_dir

from segkit.cli import main


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
