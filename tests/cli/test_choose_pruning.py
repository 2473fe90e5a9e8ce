"""`segkit choose-pruning MODEL`: the command's default tolerance is the library's, and a model it cannot prune or a
negative tolerance is one line and exit 2 with no pruning.json (the scoring itself: evaluation/test_choose_pruning.py)."""

from __future__ import annotations

import pytest
from inference_fixtures import make_model_dir

from segkit.cli import build_parser, main
from segkit.evaluation.choose_pruning import DEFAULT_TOLERANCE


def test_the_default_tolerance_is_the_librarys():
    # the CLI spells the number out to stay torch-free at start-up; the two must not drift apart
    assert build_parser().parse_args(["choose-pruning", "M"]).tolerance == DEFAULT_TOLERANCE


@pytest.mark.parametrize("extra, words", [([], "needs a prunable network (unetpp); this model is 'unet'"),
                                          (["--tolerance", "-0.1"], "--tolerance must be >= 0")])
def test_refusals_are_one_line_and_write_nothing(tmp_path, capsys, extra, words):
    model = make_model_dir(tmp_path / "work", num_channels=1)
    assert main(["choose-pruning", str(model), "--device", "cpu", *extra]) == 2
    err = capsys.readouterr().err
    assert words in err and err.count("\n") == 1
    assert not (model / "pruning.json").exists()
