"""What `-m` runs: find-best's ensemble from a work dir or package, post-processing only for the model it was made for."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from inference_fixtures import make_model_dir, read_array, write_input_case

from segkit.cli import main
from segkit.inference.predictor import InferenceOptions
from segkit.inference.regions import labels_for_plans
from segkit.inference.resolve import load_ensemble
from segkit.io.image import read_image
from segkit.models.postprocessing import apply_postprocessing

FAST = ["--device", "cpu", "--no-tta"]
DECISION = {"foreground_lcc": True, "lcc_classes": {"edema": [2]}}


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    """A work dir with 3d_fullres (folds 0, 1) and 2d (fold 0); find-best chose their ensemble."""
    work = tmp_path_factory.mktemp("work")
    make_model_dir(work, "3d_fullres", num_channels=1, folds=("0", "1"))
    make_model_dir(work, "2d", num_channels=1, folds=("0",))
    (work / "find_best.json").write_text(json.dumps({"best": {"members": ["2d", "3d_fullres"]},
                                                     "postprocessing": DECISION}))
    write_input_case(work.parent / "in", "c0", (10, 21, 18), (2.4, 1.1, 0.9), num_channels=1, seed=5)
    return work


def _by_hand(work: Path, images: np.ndarray, geometry) -> np.ndarray:
    """The ensemble computed member by member: mean of the members' probabilities, labels, post-processing."""
    means = []
    for config in ("2d", "3d_fullres"):
        engine = load_ensemble(work, config, device="cpu", postprocess=False, options=InferenceOptions(tta=False))
        means.append(engine.predict("c0", images, geometry, np.float32).probabilities)
    labels = labels_for_plans((means[0] + means[1]) / 2, engine.plans.label_coding)
    return apply_postprocessing(labels, DECISION)


def test_work_dir_and_its_package_run_find_bests_ensemble(work, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SEGKIT_CACHE", str(tmp_path / "cache"))
    inputs = work.parent / "in"
    assert main(["predict", "-i", str(inputs), "-o", str(tmp_path / "work_out"), "-m", str(work), *FAST]) == 0
    package = tmp_path / "ensemble.zip"
    assert main(["export-model", str(work), "-o", str(package)]) == 0
    with zipfile.ZipFile(package) as archive:
        manifest = json.loads(archive.read("manifest.json"))
    assert manifest["configurations"] == ["2d", "3d_fullres"]
    assert manifest["folds"] == {"2d": ["0"], "3d_fullres": ["0", "1"]} and manifest["postprocessing"] == DECISION
    assert all(len(entry["sha256"]) == 64 for entry in manifest["files"].values())
    assert main(["predict", "-i", str(inputs), "-o", str(tmp_path / "zip_out"), "-m", str(package), *FAST]) == 0
    report = json.loads((tmp_path / "zip_out" / "report.json").read_text())
    assert report["configuration"] == "2d+3d_fullres" and report["postprocessing"] == DECISION
    image = read_image(inputs / "c0_0000.nii.gz", np.float32)
    expected = _by_hand(work, image.array[None], image.geometry)
    np.testing.assert_array_equal(read_array(tmp_path / "zip_out" / "c0.nii.gz"), expected)
    np.testing.assert_array_equal(read_array(tmp_path / "work_out" / "c0.nii.gz"), expected)


def test_a_configuration_find_best_did_not_pick_carries_no_postprocessing(work, tmp_path, capsys):
    package = tmp_path / "3d.zip"
    assert main(["export-model", str(work), "-c", "3d_fullres", "-o", str(package)]) == 0
    assert "find-best chose 2d+3d_fullres" in capsys.readouterr().err
    with zipfile.ZipFile(package) as archive:
        manifest = json.loads(archive.read("manifest.json"))
        assert "postprocessing.json" not in archive.namelist()
    assert manifest["configurations"] == ["3d_fullres"] and manifest["postprocessing"] is None
    assert main(["export-model", str(work / "models" / "2d"), "-o", str(tmp_path / "2d.zip"),
                 "--find-best", str(work / "find_best.json")]) == 2
    assert "not 2d" in capsys.readouterr().err
    engine = load_ensemble(work / "models" / "3d_fullres", device="cpu")
    assert engine.postprocessing is None and "find-best chose" in engine.identity["postprocessing_note"]


def test_one_flipped_byte_inside_a_member_is_one_line_exit_2(work, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SEGKIT_CACHE", str(tmp_path / "cache"))
    package = tmp_path / "model.zip"
    assert main(["export-model", str(work), "-c", "3d_fullres", "-o", str(package)]) == 0
    with zipfile.ZipFile(package) as archive:
        info = archive.getinfo("3d_fullres/fold_0/checkpoint_final.pt")
    data = bytearray(package.read_bytes())
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    data[start + 5] ^= 0x55   # inside the deflate stream: zlib fails or the checksum does
    (tmp_path / "bad.zip").write_bytes(bytes(data))
    capsys.readouterr()
    assert main(["predict", "-i", str(work.parent / "in"), "-o", str(tmp_path / "out"), "-m", str(tmp_path / "bad.zip"),
                 *FAST]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "bad.zip" in err[0] and ("corrupt" in err[0] or "checksum" in err[0])
    assert not (tmp_path / "out").exists()


def test_output_that_is_a_file_is_one_line_exit_2(work, tmp_path, capsys):
    target = tmp_path / "taken.nii.gz"
    target.write_bytes(b"x")
    assert main(["predict", "-i", str(work.parent / "in"), "-o", str(target), "-m", str(work), *FAST]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a folder" in err[0] and target.read_bytes() == b"x"
