"""predict --backend: ONNX Runtime / OpenVINO run the network call of the one pipeline; ONNX packages; auto."""

from __future__ import annotations

import importlib.util
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from inference_fixtures import make_model_dir, read_array, write_input_case

from segkit.cli import main
from segkit.inference import backend_choice

pytestmark = pytest.mark.skipif(importlib.util.find_spec("onnxruntime") is None
                                or importlib.util.find_spec("onnx") is None,
                                reason="onnx / onnxruntime not installed (pip install 'segkit-revmb[onnx]')")
HAS_OPENVINO = importlib.util.find_spec("openvino") is not None


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> dict:
    """A two-fold model folder, its ONNX package, one odd-shaped input case and the torch prediction."""
    root = tmp_path_factory.mktemp("backends")
    model = make_model_dir(root / "work", num_channels=2, folds=("0", "1"))
    package = root / "model_onnx.zip"
    assert main(["export-model", str(model), "-o", str(package), "--format", "onnx"]) == 0
    inputs = root / "inputs"
    inputs.mkdir()
    write_input_case(inputs, "case", (13, 37, 30), (2.1, 0.9, 1.1), num_channels=2)
    assert main(["predict", "-i", str(inputs), "-o", str(root / "torch"), "-m", str(model), "--device", "cpu",
                 "--precision", "fp32"]) == 0
    return {"root": root, "model": model, "package": package, "inputs": inputs,
            "torch": read_array(root / "torch" / "case.nii.gz")}


def predict(setup: dict, name: str, model: Path, *flags: str) -> int:
    """Run segkit predict on the input folder into root/name."""
    return main(["predict", "-i", str(setup["inputs"]), "-o", str(setup["root"] / name), "-m", str(model),
                 "--device", "cpu", *flags])


def report_backend(setup: dict, name: str) -> dict:
    """report.json's backend entry of a run."""
    return json.loads((setup["root"] / name / "report.json").read_text())["backend"]


def test_onnx_package_holds_onnx_networks_and_the_same_plans(setup):
    """export-model --format onnx: plans, dataset.json, one network.onnx per fold, checksums, network_format."""
    with zipfile.ZipFile(setup["package"]) as archive:
        names = sorted(archive.namelist())
        manifest = json.loads(archive.read("manifest.json"))
        assert names == ["3d_fullres/dataset.json", "3d_fullres/fold_0/network.onnx", "3d_fullres/fold_1/network.onnx",
                         "3d_fullres/plans.json", "manifest.json"]
        assert archive.read("3d_fullres/plans.json") == (setup["model"] / "plans.json").read_bytes()
    assert manifest["network_format"] == "onnx" and manifest["onnx"]["opset"] >= 17
    assert manifest["onnx"]["input"] == "image" and manifest["onnx"]["output"] == "logits"
    assert set(manifest["files"]) == set(names) - {"manifest.json"}


@pytest.mark.parametrize("backend", ["onnxruntime",
                                     pytest.param("openvino", marks=pytest.mark.skipif(
                                         not HAS_OPENVINO, reason="openvino not installed"))])
@pytest.mark.parametrize("source", ["folder", "package"])
def test_backend_label_maps_equal_torch(setup, backend, source):
    """The same case through another backend: the label map agrees with torch fp32 (two folds, TTA, revert)."""
    name = f"{backend}_{source}"
    model = setup["model"] if source == "folder" else setup["package"]
    assert predict(setup, name, model, "--backend", backend) == 0
    labels = read_array(setup["root"] / name / "case.nii.gz")
    assert labels.shape == setup["torch"].shape
    assert (labels == setup["torch"]).mean() >= 0.9999
    entry = report_backend(setup, name)
    assert entry["name"] == backend and entry["requested"] == backend and entry["precision"] == "fp32"


def test_onnx_package_on_torch_is_one_line_exit_2(setup, capsys):
    """torch cannot run ONNX networks: one message naming the package, exit 2, nothing written."""
    assert predict(setup, "refused", setup["package"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "holds ONNX networks" in err and str(setup["package"]) in err
    assert not (setup["root"] / "refused").exists()


def test_onnx_member_with_one_byte_changed_is_refused(setup, tmp_path, capsys):
    """A package whose network.onnx differs in one byte fails its checksum: one line, exit 2."""
    tampered = tmp_path / "tampered.zip"
    with zipfile.ZipFile(setup["package"]) as old, zipfile.ZipFile(tampered, "w") as new:
        for info in old.infolist():
            data = old.read(info.filename)
            if info.filename == "3d_fullres/fold_1/network.onnx":
                data = data[:100] + bytes([data[100] ^ 1]) + data[101:]
            new.writestr(info.filename, data)
    code = main(["predict", "-i", str(setup["inputs"]), "-o", str(tmp_path / "out"), "-m", str(tampered),
                 "--backend", "onnxruntime", "--device", "cpu"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "checksum mismatch for 3d_fullres/fold_1/network.onnx" in err


def test_onnxruntime_refuses_reduced_precision(setup, capsys):
    """onnxruntime runs fp32 only: --precision bf16 is one message, exit 2."""
    assert predict(setup, "bf16", setup["model"], "--backend", "onnxruntime", "--precision", "bf16") == 2
    assert "fp32 only" in capsys.readouterr().err


def test_python_api_backend_equals_torch(setup):
    """Predictor(backend='onnxruntime') on a NumPy array gives the torch Predictor's probabilities."""
    import segkit

    images = np.random.default_rng(0).normal(size=(2, 10, 30, 28)).astype(np.float32)
    kwargs = {"device": "cpu", "precision": "fp32", "tta": False}
    torch_p = segkit.Predictor(setup["model"], **kwargs).predict(images, spacing=(2.5, 1.0, 1.0),
                                                                 return_probabilities=True)
    ort_p = segkit.Predictor(setup["package"], backend="onnxruntime", **kwargs).predict(
        images, spacing=(2.5, 1.0, 1.0), return_probabilities=True)
    np.testing.assert_array_equal(torch_p[0], ort_p[0])
    np.testing.assert_allclose(torch_p[1], ort_p[1], atol=1e-4)


def test_auto_measures_once_stores_and_reports(setup, monkeypatch, tmp_path):
    """auto: the first run measures and stores the record; the next reuses it; report.json says what and why."""
    monkeypatch.setenv("SEGKIT_CACHE", str(tmp_path / "cache"))
    assert predict(setup, "auto1", setup["model"], "--backend", "auto") == 0
    records = backend_choice.read_measurements()
    assert len(records) == 1
    record = next(iter(records.values()))
    assert {"torch", "onnxruntime"} <= set(record["results"])
    assert record["results"]["onnxruntime"]["max_abs_logit_difference"] < 1e-4
    entry = report_backend(setup, "auto1")
    assert entry["requested"] == "auto" and entry["name"] == backend_choice.decide(record)[0]
    assert entry["measurement"] == record and entry["why"]

    def no_measuring(*args, **kwargs):
        raise AssertionError("measured again although a record is stored")

    monkeypatch.setattr(backend_choice, "measure", no_measuring)
    assert predict(setup, "auto2", setup["model"], "--backend", "auto") == 0
    assert (read_array(setup["root"] / "auto2" / "case.nii.gz") == setup["torch"]).mean() >= 0.9999


def test_onnx_package_on_auto_runs_onnxruntime(setup):
    """An ONNX package with --backend auto runs on an installed ONNX backend."""
    assert predict(setup, "auto_package", setup["package"], "--backend", "auto") == 0
    assert report_backend(setup, "auto_package")["name"] in ("onnxruntime", "openvino")
