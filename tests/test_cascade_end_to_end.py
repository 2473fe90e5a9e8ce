"""The cascade end to end on a tiny phantom: 3d_lowres -> 3d_cascade_fullres trained, chosen (or not) by
find-best, packaged with its previous stage, predicted from the package voxel for voxel like from the work dir."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
from training_data import make_cascade_work_dir

from segkit.cli import main
from segkit.inference.probabilities import load_probabilities
from segkit.io.image import read_image

TINY_RUN = ["--epochs", "2", "--iterations-per-epoch", "2", "--quiet", "--num-workers", "0", "--threads", "1",
            "--device", "cpu"]
CONFIGS = ("3d_fullres", "3d_lowres", "3d_cascade_fullres")


def _label_maps(folder: Path) -> dict[str, np.ndarray]:
    """Every label map of a prediction folder by file name."""
    return {p.name: read_image(p).array for p in sorted(folder.glob("*.nii.gz"))}


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    """Every fold of the three configurations trained (2-fold split); each fold predicted its validation cases."""
    dataset, work = make_cascade_work_dir(tmp_path_factory.mktemp("cascade"))
    for config in CONFIGS:
        for fold in ("0", "1"):
            assert main(["train", str(dataset), "--work-dir", str(work), "-c", config, "-f", fold, *TINY_RUN,
                         "--predict-validation"]) == 0
    return dataset, work


@pytest.mark.slow
def test_trainer_validation_predictions_equal_predict_missing(trained, tmp_path):
    """The fold's own end-of-training predictions are what `find-best --predict-missing` writes for it."""
    dataset, work = trained
    for config in ("3d_lowres", "3d_cascade_fullres"):
        folder = work / "models" / config / "fold_0" / "validation"
        kept = tmp_path / config
        shutil.copytree(folder, kept)
        shutil.rmtree(folder)
        assert main(["find-best", str(work), "--configs", config, "--predict-missing", "--device", "cpu",
                     "--ref", str(dataset), "-o", str(tmp_path / f"{config}.json")]) == 0
        names = sorted(p.name for p in kept.iterdir())
        assert names == sorted(p.name for p in folder.iterdir()) and len(names) == 4   # 2 cases: npz + label map
        for name in names:
            if name.endswith(".npz"):
                ours, theirs = load_probabilities(kept / name), load_probabilities(folder / name)
                assert np.array_equal(ours[0], theirs[0])
            else:
                assert np.array_equal(read_image(kept / name).array, read_image(folder / name).array)


@pytest.mark.slow
def test_cascade_is_scored_packaged_and_predicted_from_the_package_like_the_work_dir(trained, tmp_path):
    dataset, work = trained
    # without --configs: the configurations whose CV predictions are complete; the cascade joins once it has them
    kept = next((work / "models" / "3d_cascade_fullres" / "fold_1" / "validation").glob("*.npz"))
    kept.rename(tmp_path / kept.name)
    assert main(["find-best", str(work), "--ref", str(dataset), "-o", str(tmp_path / "partial.json")]) == 0
    partial = json.loads((tmp_path / "partial.json").read_text())
    assert partial["configurations"] == ["3d_fullres", "3d_lowres"]
    assert partial["left_out"] == {"3d_cascade_fullres": "1 CV prediction(s) missing"}
    (tmp_path / kept.name).rename(kept)
    assert main(["find-best", str(work), "--ref", str(dataset)]) == 0
    result = json.loads((work / "find_best.json").read_text())
    assert result["configurations"] == list(CONFIGS) and result["left_out"] == {}
    names = {c["name"] for c in result["candidates"]}
    assert {"3d_cascade_fullres", "3d_fullres+3d_cascade_fullres", "3d_lowres+3d_cascade_fullres"} <= names
    assert result["best"]["name"] in names
    package = tmp_path / "cascade.zip"
    assert main(["export-model", str(work), "-c", "3d_cascade_fullres", "-o", str(package)]) == 0
    with zipfile.ZipFile(package) as archive:
        members = set(archive.namelist())
        manifest = json.loads(archive.read("manifest.json"))
    assert manifest["configurations"] == ["3d_cascade_fullres"]
    assert manifest["previous_stages"] == {"3d_cascade_fullres": {"configuration": "3d_lowres", "folds": ["0", "1"]}}
    assert {"3d_lowres/plans.json", "3d_lowres/fold_0/checkpoint_final.pt", "3d_lowres/fold_1/checkpoint_final.pt",
            "3d_cascade_fullres/fold_1/checkpoint_final.pt"} <= members
    images = dataset / "imagesTr"
    common = ["-i", str(images), "--device", "cpu", "--threads", "1", "--save-probabilities"]
    assert main(["predict", *common, "-o", str(tmp_path / "work_out"), "-m", str(work), "-c", "3d_cascade_fullres",
                 "--no-postprocess"]) == 0
    assert main(["predict", *common, "-o", str(tmp_path / "package_out"), "-m", str(package),
                 "--no-postprocess"]) == 0
    from_work, from_package = _label_maps(tmp_path / "work_out"), _label_maps(tmp_path / "package_out")
    assert len(from_work) == 4 and from_work.keys() == from_package.keys()
    for name, labels in from_work.items():
        assert np.array_equal(labels, from_package[name]), name
        case = name[:-len(".nii.gz")]
        assert np.array_equal(load_probabilities(tmp_path / "work_out" / f"{case}.npz")[0],
                              load_probabilities(tmp_path / "package_out" / f"{case}.npz")[0])
    report = json.loads((tmp_path / "package_out" / "report.json").read_text())
    assert report["previous_stages"] == {"3d_cascade_fullres": "3d_lowres folds 0, 1"}
    # --continue skips the finished cases of a cascade run like any other
    assert main(["predict", *common, "-o", str(tmp_path / "package_out"), "-m", str(package), "--no-postprocess",
                 "--continue"]) == 0


@pytest.mark.slow
def test_a_previous_stage_in_the_ensemble_runs_once_per_case(trained, monkeypatch):
    """lowres + cascade: two stages, two network passes per case, and the cascade's output as when it runs alone."""
    from segkit.inference import predictor
    from segkit.inference.resolve import load_ensemble

    dataset, work = trained
    image = read_image(dataset / "imagesTr" / "phantom_001_0000.nii.gz")
    images = np.stack([read_image(dataset / "imagesTr" / f"phantom_001_{c:04d}.nii.gz").array for c in range(4)])
    pair = load_ensemble(work, ["3d_lowres", "3d_cascade_fullres"], device="cpu")
    alone = load_ensemble(work, "3d_cascade_fullres", device="cpu")
    assert [s.configuration for s in pair.stages] == ["3d_lowres", "3d_cascade_fullres"] and pair.member_stages == [0, 1]
    assert [s.configuration for s in alone.stages] == ["3d_lowres", "3d_cascade_fullres"] and alone.member_stages == [1]
    calls = []
    original = predictor.probabilities_and_fold_entropy
    monkeypatch.setattr(predictor, "probabilities_and_fold_entropy",
                        lambda model, data, options: calls.append((model.configuration, data.shape[0]))
                        or original(model, data, options))
    together = pair.compute(pair.prepare("phantom_001", images.astype(np.float32), image.geometry))
    assert calls == [("3d_lowres", 4), ("3d_cascade_fullres", 7)]
    by_itself = alone.compute(alone.prepare("phantom_001", images.astype(np.float32), image.geometry))
    assert np.array_equal(together[1], by_itself[0])
