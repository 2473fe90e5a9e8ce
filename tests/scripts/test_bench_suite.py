"""scripts/bench_suite.py: a default must raise the suite mean and lower no dataset beyond the seed spread."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
import bench_suite  # noqa: E402


def _rows(*values):
    return [{"held_out_mean_dice": v} for v in values]


def test_a_variant_that_lowers_one_dataset_beyond_the_spread_is_not_a_default():
    table = {"brain-lateral": {"today": bench_suite.summarise(_rows(0.70, 0.71, 0.69)),
                               "variant": bench_suite.summarise(_rows(0.80, 0.81, 0.79))},
             "brain-merged": {"today": bench_suite.summarise(_rows(0.80, 0.81, 0.80)),
                              "variant": bench_suite.summarise(_rows(0.75, 0.76, 0.75))}}
    assert table["brain-lateral"]["today"] == {"mean": 0.7, "spread": 0.02, "per_seed": [0.70, 0.71, 0.69]}
    verdict = bench_suite.verdict(table)
    assert verdict["suite_mean"]["variant"] > verdict["suite_mean"]["today"]      # the mean alone would say yes
    assert verdict["lower_beyond_spread"] == ["brain-merged"] and not verdict["becomes_default"]


def test_a_variant_within_the_spread_everywhere_and_better_on_average_is_a_default():
    table = {"a": {"today": bench_suite.summarise(_rows(0.70, 0.74)), "variant": bench_suite.summarise(_rows(0.78, 0.80))},
             "b": {"today": bench_suite.summarise(_rows(0.80, 0.84)), "variant": bench_suite.summarise(_rows(0.79, 0.83))}}
    verdict = bench_suite.verdict(table)
    assert verdict["lower_beyond_spread"] == [] and verdict["becomes_default"]


def test_fold_0_validates_on_the_last_training_case_and_never_sees_held_out_ones(tmp_path):
    for case in ("lung2_002", "lung2_001", "lung2_003"):
        (tmp_path / "imagesTr").mkdir(exist_ok=True)
        (tmp_path / "imagesTr" / f"{case}_0000.nii.gz").write_bytes(b"")
    (tmp_path / "heldout" / "images").mkdir(parents=True)
    (tmp_path / "heldout" / "images" / "lung1_0000.nii.gz").write_bytes(b"")
    assert bench_suite.split_of(tmp_path) == [{"train": ["lung2_001", "lung2_002"], "val": ["lung2_003"]}]
    assert set(bench_suite.DATASETS) >= {"brain-lateral", "brain-merged", "ct-abdomen", "lesion-lung-ct"}
