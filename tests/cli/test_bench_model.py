"""segkit bench-model: the efficiency report, and one message + exit 2 for every user mistake."""

from __future__ import annotations

import json

import pytest
from inference_fixtures import tiny_plans

from segkit.cli import main


@pytest.mark.parametrize("argv, message", [
    (["bench-model"], "give a work dir / plans.json or --network"),
    (["bench-model", "--network", "unet"], "--network needs --patch-size"),
    (["bench-model", "--network", "unet", "--patch-size", "30", "32", "32"], "must be a multiple of"),
    (["bench-model", "--network", "unet", "--patch-size", "32", "32", "32", "--batch-size", "0"], "--batch-size"),
    (["bench-model", "--network", "unet", "--patch-size", "32", "32", "32", "--dice", "0.8"], "--dice needs --reference"),
    (["bench-model", "--network", "unet", "--patch-size", "32", "32", "32", "--dice", "1.5"], "between 0 and 1"),
])
def test_bad_input_is_one_message_and_exit_2(argv, message, capsys) -> None:
    """Each mistake is refused before any network is built: one line on stderr, exit code 2."""
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_missing_plans_and_bad_reference(tmp_path, capsys) -> None:
    """A folder without plans.json, an unknown configuration and a malformed reference name the file."""
    assert main(["bench-model", str(tmp_path)]) == 2
    assert "plans.json" in capsys.readouterr().err
    reference = tmp_path / "ref.json"
    reference.write_text(json.dumps({"rows": [{"dice": 0.8}]}))
    assert main(["bench-model", "--network", "unet", "--patch-size", "16", "16", "16", "--dice", "0.8",
                 "--reference", str(reference)]) == 2
    assert "ref.json" in capsys.readouterr().err
    reference.write_text(json.dumps({"rows": [{"dice": 0.8, "parameters": 1e6, "flops": 1e9, "throughput": 1e5}]}))
    assert main(["bench-model", "--network", "unet", "--patch-size", "16", "16", "16", "--dice", "0.8",
                 "--reference", str(reference)]) == 2
    assert "at least 2 models" in capsys.readouterr().err


def test_u_score_line_names_the_undefined_terms() -> None:
    """A Dice term left undefined by equal reference Dice values prints as undefined, with the reason."""
    from segkit.cli.bench_model import format_u_score

    terms = {"dice_term": None, "parameters_term": 0.5, "flops_term": 0.5, "throughput_term": 0.5,
             "efficiency": 0.5, "u_score": None}
    text = format_u_score(terms, 0.0, "formula")
    assert "U-Score             undefined at Dice 0.000 (efficiency 0.500" in text
    assert "undefined term(s) dice" in text and "reference range is empty" in text


@pytest.mark.slow
def test_report_of_a_plans_configuration_with_u_score(tmp_path, capsys) -> None:
    """A tiny planned configuration: exact parameters, FLOPs, measured memory and time, throughput, U-Score."""
    (tmp_path / "plans.json").write_text(json.dumps(tiny_plans(num_channels=1)))
    reference = tmp_path / "ref.json"
    reference.write_text(json.dumps({"rows": [
        {"dice": 0.5, "parameters": 1e3, "flops": 1e6, "throughput": 1e3},
        {"dice": 0.9, "parameters": 1e6, "flops": 1e10, "throughput": 1e8}]}))
    out = tmp_path / "report.json"
    assert main(["bench-model", str(tmp_path), "--threads", "1", "--steps", "2", "--repeats", "1", "--dice", "0.7",
                 "--reference", str(reference), "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["parameters"] == report["predicted_parameters"] > 0
    assert report["flops"] > 0 and report["training_flops"] > report["flops"]
    assert report["measured_step_bytes"] > 0 and report["step_seconds"] > 0
    assert report["inference"]["voxels_per_second"] > 0
    assert 0 < report["u_score"]["u_score"] < 1
    assert "U-Score" in capsys.readouterr().out
