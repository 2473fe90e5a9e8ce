"""`segkit ensemble -i DIR1 DIR2 ... -o OUT`: the arguments reach the ensemble, one summary line, refusals exit 2."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from inference_fixtures import read_array, tiny_plans

from segkit.cli import main
from segkit.inference.probabilities import load_probabilities, probability_metadata, save_probabilities
from segkit.io.image import Geometry
from segkit.plans import Plans

GEOMETRY = Geometry(spacing=(1.2, 0.8, 3.0), origin=(4.0, -2.0, 10.0), direction=tuple(np.eye(3).ravel()),
                    size=(7, 6, 5))


def _folder(folder: Path, seed: int, cases: tuple[str, ...] = ("a", "b")) -> Path:
    """Softmax probabilities (4 classes, float16 as predict saves them) of the given cases."""
    rng = np.random.default_rng(seed)
    plans = Plans.from_json(tiny_plans())
    for case_id in cases:
        logits = rng.normal(size=(4, *GEOMETRY.size[::-1]))
        probabilities = np.exp(logits) / np.exp(logits).sum(axis=0)
        save_probabilities(folder / f"{case_id}.npz", probabilities.astype(np.float32),
                           probability_metadata(case_id, GEOMETRY, plans, ".nii.gz"))
    return folder


def test_two_folders_give_one_label_map_per_case_and_a_summary(tmp_path, capsys):
    first, second = _folder(tmp_path / "p1", seed=1), _folder(tmp_path / "p2", seed=2)
    out = tmp_path / "ens"
    assert main(["ensemble", "-i", str(first), str(second), "-o", str(out), "--save-probabilities"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == f"ensembled 2 case(s) from 2 folders into {out}"
    assert sorted(p.name for p in out.iterdir()) == ["a.nii.gz", "a.npz", "b.nii.gz", "b.npz"]
    mean, metadata = load_probabilities(out / "a.npz")
    expected = (load_probabilities(first / "a.npz")[0] + load_probabilities(second / "a.npz")[0]) / 2
    np.testing.assert_allclose(mean, expected, atol=1e-3)
    assert metadata["ensemble_of"] == [str(first), str(second)]
    clear = np.sort(mean, axis=0)[-1] - np.sort(mean, axis=0)[-2] > 1e-2   # float16 storage may flip exact ties
    np.testing.assert_array_equal(read_array(out / "a.nii.gz")[clear], mean.argmax(axis=0)[clear])


def test_without_save_probabilities_only_label_maps_are_written(tmp_path, capsys):
    out = tmp_path / "ens"
    assert main(["ensemble", "-i", str(_folder(tmp_path / "p1", 1)), str(_folder(tmp_path / "p2", 2)),
                 "-o", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["a.nii.gz", "b.nii.gz"]


@pytest.mark.parametrize("inputs, words", [(["p1"], "at least two"), (["p1", "p2"], "must differ")])
def test_one_folder_or_an_output_among_the_inputs_is_one_line_and_exit_2(tmp_path, capsys, inputs, words):
    _folder(tmp_path / "p1", 1)
    _folder(tmp_path / "p2", 2)
    assert main(["ensemble", "-i", *[str(tmp_path / i) for i in inputs], "-o", str(tmp_path / "p1")]) == 2
    err = capsys.readouterr().err
    assert words in err and err.count("\n") == 1
    assert sorted(p.name for p in (tmp_path / "p1").iterdir()) == ["a.npz", "b.npz"]
