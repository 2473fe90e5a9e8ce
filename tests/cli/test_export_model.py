"""`segkit export-model MODEL -o PACKAGE`: one line saying what the package holds, a note when the decision is left
out, refusals exit 2 with nothing written."""

from __future__ import annotations

import json
import zipfile

import pytest
from inference_fixtures import make_model_dir

from segkit.cli import main
from segkit.models.package import sha256_of


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """WORK/models/{3d_fullres (folds 0, 1), 2d (fold 0)}, find-best chose 3d_fullres with a decision (read-only)."""
    work = tmp_path_factory.mktemp("export") / "work"
    make_model_dir(work, "3d_fullres", num_channels=2, folds=("0", "1"))
    make_model_dir(work, "2d", num_channels=2)
    (work / "find_best.json").write_text(json.dumps({"best": {"members": ["3d_fullres"]},
                                                     "postprocessing": {"foreground_lcc": True, "lcc_classes": {}}}))
    return work


def test_the_summary_names_folds_checkpoint_post_processing_files_and_digest(work, tmp_path, capsys):
    package = tmp_path / "model.zip"
    assert main(["export-model", str(work), "-o", str(package), "-f", "1"]) == 0
    captured = capsys.readouterr()
    with zipfile.ZipFile(package) as archive:
        manifest = json.loads(archive.read("manifest.json"))
    assert captured.out.splitlines()[-1] == (
        f"wrote {package}: 3d_fullres folds 1 (checkpoint_final), with post-processing, {len(manifest['files'])} "
        f"files; sha256 {sha256_of(package)}")
    assert captured.err == "" and manifest["folds"] == {"3d_fullres": ["1"]}


def test_a_configuration_find_best_did_not_choose_is_packaged_without_the_decision_and_a_note(work, tmp_path, capsys):
    package = tmp_path / "2d.zip"
    assert main(["export-model", str(work), "-c", "2d", "-o", str(package)]) == 0
    captured = capsys.readouterr()
    assert "2d folds 0 (checkpoint_final), without post-processing" in captured.out
    assert captured.err.startswith("segkit export-model: note: find-best chose 3d_fullres; 2d runs without")


def test_a_fold_that_does_not_exist_is_exit_2_and_writes_no_package(work, tmp_path, capsys):
    assert main(["export-model", str(work), "-o", str(tmp_path / "model.zip"), "-f", "7"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "fold_7" in err
    assert not any(tmp_path.iterdir())
