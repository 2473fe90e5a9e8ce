"""`segkit calibrate-uncertainty WORK`: the configuration is -c or find-best's single choice, else a one-line refusal."""

from __future__ import annotations

import json

import pytest
from inference_fixtures import make_model_dir

from segkit.cli import main
from segkit.cli.calibrate_uncertainty import default_configuration
from segkit.errors import UserError


@pytest.mark.parametrize("members, expected", [(["2d"], "2d"), (["3d_fullres", "2d"], None), ([], None),
                                               (None, None)])
def test_find_bests_single_choice_is_the_default_and_anything_else_asks_for_dash_c(tmp_path, members, expected):
    if members is not None:
        (tmp_path / "find_best.json").write_text(json.dumps({"best": {"members": members}}))
    if expected is None:
        with pytest.raises(UserError, match="name the configuration with -c"):
            default_configuration(tmp_path)
    else:
        assert default_configuration(tmp_path) == expected


def test_calibrate_uncertainty_without_a_configuration_is_a_user_error(tmp_path, capsys):
    make_model_dir(tmp_path / "work", num_channels=1)
    assert main(["calibrate-uncertainty", str(tmp_path / "work")]) == 2
    assert "-c" in capsys.readouterr().err
