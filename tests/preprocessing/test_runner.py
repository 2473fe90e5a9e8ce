"""Preprocessing a dataset (segkit.preprocessing.runner): plans checked before any case, every configuration's cases
written then skipped, a configuration preprocessed like an earlier one linked instead of recomputed, --force recomputing
from the raw images."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from preprocessing_helpers import make_plans

from segkit.errors import UserError
from segkit.io.image import read_image, write_image
from segkit.phantom import PhantomSpec, generate_dataset
from segkit.preprocessing.runner import load_plans, preprocess_dataset


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """A 2-case, 4-channel phantom (read-only)."""
    return generate_dataset(tmp_path_factory.mktemp("runner") / "Phantom", 2, spec=PhantomSpec(shape=(8, 16, 16)))


def _plans(work: Path, plans: dict) -> Path:
    work.mkdir(parents=True, exist_ok=True)
    (work / "plans.json").write_text(json.dumps(plans))
    return work / "plans.json"


@pytest.mark.parametrize("plans, words", [
    ([1, 2], r"not a segkit plans file \(needs configurations\)"),
    (make_plans(), "unknown configuration '2d'"),
    (make_plans(normalization=[{"scheme": "zscore", "use_nonzero_mask": True}] * 3), "normalization"),
])
def test_plans_preprocessing_cannot_use_are_refused_naming_the_file(tmp_path, plans, words):
    path = _plans(tmp_path, plans)
    with pytest.raises(UserError, match=words) as error:
        load_plans(path, ["3d_fullres", "2d"] if "2d" in words else ["3d_fullres"])
    assert error.value.path == str(path)


def test_a_plan_for_other_channels_or_no_plan_stops_before_any_case(dataset, tmp_path):
    _plans(tmp_path / "work", make_plans(num_channels=2))
    with pytest.raises(UserError, match="plans are for 2 channels, the dataset has 4"):
        preprocess_dataset(dataset, ["3d_fullres"], work_dir=tmp_path / "work")
    with pytest.raises(UserError, match="plans.json not found .*run `segkit plan"):
        preprocess_dataset(dataset, ["3d_fullres"], work_dir=tmp_path / "elsewhere")
    assert not (tmp_path / "work" / "preprocessed").exists()


def test_cases_are_written_then_skipped_and_an_identical_configuration_is_linked(dataset, tmp_path):
    plans = make_plans()
    plans["configurations"]["3d_cascade_fullres"] = copy.deepcopy(plans["configurations"]["3d_fullres"])
    _plans(tmp_path / "work", plans)
    first, = preprocess_dataset(dataset, ["3d_fullres"], work_dir=tmp_path / "work")
    assert (first.config, first.processed, first.skipped, first.reused) == ("3d_fullres", 2, 0, 0)
    written = sorted(p.name for p in first.out_dir.iterdir())
    assert written and all(name.startswith(("phantom_001", "phantom_002")) for name in written)
    again, = preprocess_dataset(dataset, ["3d_fullres"], work_dir=tmp_path / "work")
    assert (again.processed, again.skipped) == (0, 2)
    linked, = preprocess_dataset(dataset, ["3d_cascade_fullres"], work_dir=tmp_path / "work")
    assert (linked.processed, linked.reused) == (0, 2)
    assert sorted(p.name for p in linked.out_dir.iterdir()) == written
    for name in written:
        assert (linked.out_dir / name).read_bytes() == (first.out_dir / name).read_bytes()


def test_force_recomputes_from_the_raw_images_even_where_an_identical_configuration_is_on_disk(dataset, tmp_path):
    raw = tmp_path / "Phantom"
    shutil.copytree(dataset, raw)
    plans = make_plans()
    plans["configurations"]["3d_cascade_fullres"] = copy.deepcopy(plans["configurations"]["3d_fullres"])
    _plans(tmp_path / "work", plans)
    both = preprocess_dataset(raw, ["3d_fullres", "3d_cascade_fullres"], work_dir=tmp_path / "work")
    assert [(s.processed, s.reused) for s in both] == [(2, 0), (0, 2)]
    before = np.load(both[0].out_dir / "phantom_001.npy")
    first_channel = sorted((raw / "imagesTr").glob("phantom_001_0000.*"))[0]
    image = read_image(first_channel)
    write_image(np.flip(image.array, axis=2).copy(), image.geometry, first_channel)   # same name, other content

    fresh, = preprocess_dataset(raw, ["3d_fullres"], work_dir=_plans(tmp_path / "fresh", plans).parent)
    expected = np.load(fresh.out_dir / "phantom_001.npy")
    assert not np.array_equal(expected, before)

    for config in ("3d_fullres", "3d_cascade_fullres"):
        forced, = preprocess_dataset(raw, [config], work_dir=tmp_path / "work", force=True)
        assert (forced.processed, forced.skipped, forced.reused) == (2, 0, 0)
        np.testing.assert_array_equal(np.load(forced.out_dir / "phantom_001.npy"), expected)
    again = preprocess_dataset(raw, ["3d_fullres", "3d_cascade_fullres"], work_dir=tmp_path / "work", force=True)
    assert [(s.processed, s.reused) for s in again] == [(2, 0), (0, 2)]   # linked from this run's fresh output
