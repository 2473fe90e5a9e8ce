"""`segkit predict`: exact output geometry, probabilities, fold averaging, regions, inputs, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from inference_fixtures import make_model_dir, read_array, read_geometry, write_input_case

from segkit.cli import main
from segkit.inference.probabilities import load_probabilities
from segkit.inference.regions import regions_to_labels

# odd shapes, anisotropic spacing, oblique direction; the second is smaller than the patch
CASES = {"odd": ((13, 27, 22), (3.3, 0.9, 1.1)), "small": ((3, 7, 9), (2.0, 1.3, 0.7))}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with two 4-channel cases of awkward geometry."""
    folder = tmp_path_factory.mktemp("inputs")
    for seed, (case_id, (shape, spacing)) in enumerate(CASES.items()):
        write_input_case(folder, case_id, shape, spacing, seed=seed)
    return folder


@pytest.mark.parametrize("configuration", ["3d_fullres", "2d"])
def test_outputs_have_the_inputs_exact_geometry(tmp_path, inputs, configuration):
    model = make_model_dir(tmp_path / "work", configuration)
    out = tmp_path / "pred"
    assert main(["predict", "-i", str(inputs), "-o", str(out), "-m", str(model), "--device", "cpu",
                 "--save-probabilities"]) == 0
    for case_id in CASES:
        predicted = out / f"{case_id}.nii.gz"
        assert read_geometry(predicted) == read_geometry(inputs / f"{case_id}_0000.nii.gz")
        labels = read_array(predicted)
        assert labels.dtype == np.uint8 and set(np.unique(labels)) <= {0, 1, 2, 3}
        probabilities, metadata = load_probabilities(out / f"{case_id}.npz")
        assert probabilities.shape == (4, *labels.shape)
        np.testing.assert_allclose(probabilities.sum(axis=0), 1.0, atol=5e-3)
        # argmax of the stored (float16) probabilities agrees with the written labels almost everywhere
        assert (probabilities.argmax(axis=0) == labels).mean() > 0.99
        assert metadata["geometry"]["size"] == list(reversed(labels.shape))


def test_folds_are_averaged_in_probability_space(tmp_path, inputs):
    model = make_model_dir(tmp_path / "work", folds=("0", "1"))
    runs = {}
    for name, folds in {"f0": ["0"], "f1": ["1"], "both": ["0", "1"]}.items():
        out = tmp_path / name
        assert main(["predict", "-i", str(inputs), "-o", str(out), "-m", str(model), "-f", *folds,
                     "--device", "cpu", "--save-probabilities", "--no-tta"]) == 0
        runs[name] = load_probabilities(out / "odd.npz")[0]
    assert not np.allclose(runs["f0"], runs["f1"], atol=1e-2)
    np.testing.assert_allclose(runs["both"], (runs["f0"] + runs["f1"]) / 2, atol=2e-3)


def test_region_model_writes_labels_from_regions(tmp_path, inputs):
    model = make_model_dir(tmp_path / "work", region_based=True)
    (tmp_path / "work" / "plans.json").write_text("{}")   # a work dir has its own plans.json next to models/
    out = tmp_path / "pred"
    assert main(["predict", "-i", str(inputs), "-o", str(out), "-m", str(tmp_path / "work"), "-c", "3d_fullres",
                 "--device", "cpu", "--save-probabilities", "--tile-batch", "1", "--step", "0.75"]) == 0
    probabilities, metadata = load_probabilities(out / "odd.npz")
    assert metadata["label_mode"] == "sigmoid" and probabilities.shape[0] == 3
    labels = read_array(out / "odd.nii.gz")
    consistent = regions_to_labels(probabilities, [2, 1, 3]) == labels
    assert consistent.mean() > 0.99
    assert set(np.unique(labels)) <= {0, 1, 2, 3}
    assert model.is_dir()


def test_single_file_and_raw_dataset_inputs(tmp_path):
    one_channel = make_model_dir(tmp_path / "one", num_channels=1)
    raw = tmp_path / "raw"
    geometry = write_input_case(raw / "imagesTs", "case7", (9, 20, 17), (2.0, 1.1, 0.8), num_channels=1)
    write_input_case(raw / "imagesTr", "train1", (9, 20, 17), (2.0, 1.1, 0.8), num_channels=1)
    (raw / "dataset.json").write_text("{}")
    assert main(["predict", "-i", str(raw / "imagesTs" / "case7_0000.nii.gz"), "-o", str(tmp_path / "a"),
                 "-m", str(one_channel), "--device", "cpu", "--no-tta"]) == 0
    assert read_geometry(tmp_path / "a" / "case7.nii.gz")[3] == geometry.size
    assert main(["predict", "-i", str(raw), "-o", str(tmp_path / "b"), "-m", str(one_channel), "--device", "cpu",
                 "--no-tta"]) == 0
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == ["case7.nii.gz", "case7_provenance.json",
                                                                  "case7_qc.png", "report.html", "report.json"]


def test_non_nifti_inputs_keep_their_geometry_and_format(tmp_path):
    one_channel = make_model_dir(tmp_path / "one", num_channels=1)
    labels = {}
    for ending in (".mha", ".nrrd", ".nii.gz"):
        folder = tmp_path / f"in{ending}"
        write_input_case(folder, "vol", (7, 19, 12), (1.7, 0.6, 0.9), num_channels=1, ending=ending)
        out = tmp_path / f"out{ending}"
        assert main(["predict", "-i", str(folder), "-o", str(out), "-m", str(one_channel),
                     "--device", "cpu", "--no-tta"]) == 0
        assert read_geometry(out / f"vol{ending}") == read_geometry(folder / f"vol_0000{ending}")
        labels[ending] = read_array(out / f"vol{ending}")
    assert labels[".mha"].shape == (7, 19, 12)
    # TIFF, accepted by plan/preprocess (dataset file_ending), is accepted here too; it keeps no origin/slice spacing
    write_input_case(tmp_path / "tif", "vol", (7, 19, 12), (1.7, 0.6, 0.9), num_channels=1, ending=".tif")
    assert main(["predict", "-i", str(tmp_path / "tif"), "-o", str(tmp_path / "out.tif"), "-m", str(one_channel),
                 "--device", "cpu", "--no-tta"]) == 0
    assert read_geometry(tmp_path / "out.tif" / "vol.tif") == read_geometry(tmp_path / "tif" / "vol_0000.tif")
    assert read_array(tmp_path / "out.tif" / "vol.tif").shape == (7, 19, 12)
    np.testing.assert_array_equal(labels[".nrrd"], labels[".mha"])
    np.testing.assert_array_equal(labels[".nii.gz"], labels[".mha"])


def test_user_mistakes_exit_2_without_output(tmp_path, inputs, capsys):
    model = make_model_dir(tmp_path / "work", num_channels=2)
    out = tmp_path / "pred"
    # every case has the wrong channel count: each is recorded, none written, exit 1; --fail-fast: exit 2
    assert main(["predict", "-i", str(inputs), "-o", str(out), "-m", str(model), "--device", "cpu"]) == 1
    assert "channel" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["report.html", "report.json"]
    assert main(["predict", "-i", str(inputs), "-o", str(tmp_path / "ff"), "-m", str(model), "--device", "cpu",
                 "--fail-fast"]) == 2
    assert "channel" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "ff").iterdir()) == ["report.html", "report.json"]
    out = tmp_path / "none"
    assert main(["predict", "-i", str(inputs), "-o", str(out), "-m", str(tmp_path / "nope")]) == 2
    assert main(["predict", "-i", str(inputs), "-o", str(out), "-m", str(model), "-f", "3"]) == 2
    assert "fold 3" in capsys.readouterr().err
    good = make_model_dir(tmp_path / "good")
    assert main(["predict", "-i", str(inputs), "-o", str(out), "-m", str(good), "--step", "0"]) == 2
    assert "--step" in capsys.readouterr().err and not out.exists()
    if not torch.cuda.is_available():
        assert main(["predict", "-i", str(inputs), "-o", str(out), "-m", str(good), "--device", "cuda"]) == 2
        assert "no CUDA device" in capsys.readouterr().err
    (model / "fold_0" / "checkpoint_final.pt").write_bytes(b"not a checkpoint")
    assert main(["predict", "-i", str(inputs), "-o", str(out), "-m", str(model)]) == 2
    assert "checkpoint" in capsys.readouterr().err


def test_one_list_of_formats_for_datasets_and_prediction(tmp_path, capsys):
    import json

    from segkit.errors import UserError
    from segkit.io.dataset import load_dataset

    dataset = tmp_path / "Dataset"
    dataset.mkdir()
    base = {"channel_names": {"0": "CT"}, "labels": {"background": 0, "organ": 1}}
    (dataset / "dataset.json").write_text(json.dumps({**base, "file_ending": ".tif"}))
    assert load_dataset(dataset).file_ending == ".tif"
    (dataset / "dataset.json").write_text(json.dumps({**base, "file_ending": ".png"}))
    with pytest.raises(UserError, match=r"'.png' is not a supported image format \(.nii.gz, .nii, .nrrd"):
        load_dataset(dataset)
    model = make_model_dir(tmp_path / "work", num_channels=1)
    (tmp_path / "scan.png").write_bytes(b"x")
    assert main(["predict", "-i", str(tmp_path / "scan.png"), "-o", str(tmp_path / "out"), "-m", str(model)]) == 2
    assert "not a supported image file (formats: .nii.gz" in capsys.readouterr().err


def test_a_wrong_configuration_on_a_model_folder_is_refused_up_front(tmp_path, inputs, capsys):
    """#24 item 4: `-m WORK/models/3d_fullres -c 2d` ran the 2d plan with 3d weights; now one line, exit 2, no output."""
    model = make_model_dir(tmp_path / "work", "3d_fullres")
    out = tmp_path / "pred"
    assert main(["predict", "-i", str(inputs), "-o", str(out), "-m", str(model), "-c", "2d", "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "holds the 3d_fullres model, not 2d" in err and "Traceback" not in err
    assert not out.exists() or not any(out.iterdir())
    # a folder whose name is no configuration (an unpacked copy): the checkpoint's own record decides
    renamed = model.rename(tmp_path / "copy")
    assert main(["predict", "-i", str(inputs), "-o", str(out), "-m", str(renamed), "-c", "2d", "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "fold 0 was trained as 3d_fullres, not 2d" in err and "Traceback" not in err
    assert not out.exists() or not any(out.iterdir())


def test_log_format_json_gives_one_json_object_per_stderr_line(tmp_path, capsys):
    from batch_data import write_file_case

    model = make_model_dir(tmp_path / "work", num_channels=2)
    folder = tmp_path / "in"
    write_file_case(folder, "good", seed=1)
    write_file_case(folder, "bad", seed=2, channels=1)
    out = tmp_path / "out"
    assert main(["predict", "-i", str(folder), "-o", str(out), "-m", str(model), "--device", "cpu", "--no-tta",
                 "--log-format", "json"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = [json.loads(line) for line in captured.err.splitlines()]
    events = [line["event"] for line in lines]
    assert events[0] == "run_started" and events[-1] == "run_finished" and events.count("case_finished") == 2
    cases = {line["case_id"]: line for line in lines if line["event"] == "case_finished"}
    assert cases["good"]["status"] == "ok" and cases["good"]["level"] == "info"
    assert cases["bad"]["status"] == "failed" and cases["bad"]["level"] == "error" and "channel" in cases["bad"]["reason"]
    assert lines[-1]["failed"] == 1 and lines[-1]["ok"] == 1 and lines[-1]["exit_code"] == 1
    assert all(line["component"] == "predict" for line in lines)
    # a user mistake is one JSON error line too, exit 2
    assert main(["predict", "-i", str(tmp_path / "nope"), "-o", str(out), "-m", str(model), "--log-format",
                 "json"]) == 2
    error = json.loads(capsys.readouterr().err)
    assert error["level"] == "error" and error["event"] == "user_error" and "input not found" in error["message"]
    # the next command is back to text lines
    assert main(["predict", "-i", str(tmp_path / "nope"), "-o", str(out), "-m", str(model)]) == 2
    assert capsys.readouterr().err.startswith("segkit predict: error:")


def test_single_image_with_an_output_file_name_writes_that_file(tmp_path, inputs, capsys):
    """#24 item 10: TotalSegmentator's `-i ct.nii.gz -o seg.nii.gz` made a folder `seg.nii.gz/`."""
    model = make_model_dir(tmp_path / "work", "3d_fullres", num_channels=1)
    single = tmp_path / "single"
    write_input_case(single, "ct", (5, 9, 11), (2.0, 1.3, 0.7), num_channels=1)
    image = single / "ct_0000.nii.gz"
    for name in ("seg.nii.gz", "seg.nrrd"):
        target = tmp_path / "out" / name
        assert main(["predict", "-i", str(single / "ct_0000.nii.gz"), "-o", str(target), "-m", str(model),
                     "--device", "cpu", "--no-tta"]) == 0
        assert target.is_file()
        for ours, theirs in zip(read_geometry(target), read_geometry(image)):
            assert np.allclose(ours, theirs, atol=1e-6), name
        assert sorted(p.name for p in target.parent.iterdir()) == sorted(
            p.name for p in target.parent.iterdir() if not p.name.startswith(".")), "no scratch folder left"
    folder = tmp_path / "folder"
    assert main(["predict", "-i", str(single), "-o", str(folder), "-m", str(model), "--device", "cpu", "--no-tta"]) == 0
    np.testing.assert_array_equal(read_array(tmp_path / "out" / "seg.nii.gz"), read_array(folder / "ct.nii.gz"))
    capsys.readouterr()
    assert main(["predict", "-i", str(image), "-o", str(tmp_path / "y.nii.gz"), "-m", str(model),
                 "--save-probabilities"]) == 2
    assert "need(s) an output folder" in capsys.readouterr().err and not (tmp_path / "y.nii.gz").exists()


def test_output_into_a_datasets_label_folder_is_refused(tmp_path, inputs, capsys):
    """#24 item 10: `-o DATASET/labelsTr` would overwrite the reference labels."""
    model = make_model_dir(tmp_path / "work", "3d_fullres")
    dataset = tmp_path / "Dataset001_X"
    (dataset / "labelsTr").mkdir(parents=True)
    (dataset / "dataset.json").write_text("{}")
    (dataset / "labelsTr" / "odd.nii.gz").write_bytes(b"reference")
    assert main(["predict", "-i", str(inputs), "-o", str(dataset / "labelsTr"), "-m", str(model),
                 "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "overwrite its reference labels" in err
    assert (dataset / "labelsTr" / "odd.nii.gz").read_bytes() == b"reference"
