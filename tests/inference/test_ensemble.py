"""`segkit ensemble`: mean of saved probabilities, labels with the input's geometry, refusals."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from inference_fixtures import make_model_dir, read_array, read_geometry, write_input_case

from segkit.cli import main
from segkit.inference.probabilities import load_probabilities


@pytest.fixture(scope="module")
def predictions(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """3d_fullres and 2d predictions (with probabilities) of two awkward cases, plus a region model's."""
    root = tmp_path_factory.mktemp("ens")
    inputs = root / "inputs"
    write_input_case(inputs, "a", (11, 23, 18), (2.7, 0.8, 1.2), seed=1)
    write_input_case(inputs, "b", (6, 14, 15), (3.1, 1.0, 0.9), seed=2)
    folders = {}
    for name, configuration, regions in [("3d", "3d_fullres", False), ("2d", "2d", False), ("reg", "3d_fullres", True)]:
        model = make_model_dir(root / f"work_{name}", configuration, region_based=regions)
        folders[name] = root / f"pred_{name}"
        assert main(["predict", "-i", str(inputs), "-o", str(folders[name]), "-m", str(model), "--device", "cpu",
                     "--save-probabilities", "--no-tta"]) == 0
    return {"inputs": inputs, **folders}


def test_ensemble_averages_probabilities_and_keeps_geometry(tmp_path, predictions):
    out = tmp_path / "ens"
    assert main(["ensemble", "-i", str(predictions["3d"]), str(predictions["2d"]), "-o", str(out),
                 "--save-probabilities"]) == 0
    for case_id in ("a", "b"):
        p3d, _ = load_probabilities(predictions["3d"] / f"{case_id}.npz")
        p2d, _ = load_probabilities(predictions["2d"] / f"{case_id}.npz")
        mean, metadata = load_probabilities(out / f"{case_id}.npz")
        np.testing.assert_allclose(mean, (p3d + p2d) / 2, atol=1e-3)
        labels = read_array(out / f"{case_id}.nii.gz")
        margin = np.sort(mean, axis=0)[-1] - np.sort(mean, axis=0)[-2]
        clear = margin > 1e-2   # float16 storage may flip exact ties
        np.testing.assert_array_equal(labels[clear], mean.argmax(axis=0)[clear])
        assert read_geometry(out / f"{case_id}.nii.gz") == read_geometry(predictions["inputs"] / f"{case_id}_0000.nii.gz")
        assert len(metadata["ensemble_of"]) == 2


def test_ensemble_refuses_mismatched_folders(tmp_path, predictions, capsys):
    out = tmp_path / "ens"
    assert main(["ensemble", "-i", str(predictions["3d"]), str(predictions["reg"]), "-o", str(out)]) == 2
    assert "label_mode" in capsys.readouterr().err
    partial = tmp_path / "partial"
    shutil.copytree(predictions["2d"], partial)
    (partial / "b.npz").unlink()
    assert main(["ensemble", "-i", str(predictions["3d"]), str(partial), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "b.npz missing here" in err and str(partial) in err and err.count("\n") == 1
    # #24 item 9: the partial folder first: the message still names its missing file, not a case that is present
    assert main(["ensemble", "-i", str(partial), str(predictions["3d"]), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "b.npz missing here" in err and str(partial) in err and str(predictions["3d"]) not in err
    assert main(["ensemble", "-i", str(predictions["3d"]), "-o", str(out)]) == 2
    shutil.copyfile(predictions["2d"] / "b.npz", partial / "b.npz")
    shutil.copyfile(predictions["reg"] / "b.npz", partial / "b.npz")   # only the second case is incompatible
    assert main(["ensemble", "-i", str(predictions["3d"]), str(partial), "-o", str(out)]) == 2
    assert "b.npz" in capsys.readouterr().err and not out.exists()
    (partial / "a.npz").write_bytes(b"garbage")
    (partial / "b.npz").write_bytes(b"garbage")
    assert main(["ensemble", "-i", str(predictions["3d"]), str(partial), "-o", str(out)]) == 2
    assert "probability file" in capsys.readouterr().err
    assert not any(out.glob("*.nii.gz"))
