"""Training precision: the auto rule, fp16 refused on CPU (exit 2), and a bf16 CPU run recorded with fp32 weights."""

import json

import pytest
import torch
from training_data import copy_work, make_work_dir

from segkit.cli import main as segkit_main
from segkit.errors import UserError
from segkit.inference import acceleration
from segkit.inference.acceleration import resolve_precision
from segkit.training import precision
from segkit.training.precision import make_autocast, training_precision

HARMLESS = {"max_abs_dice_difference": 0.0004, "min_foreground_agreement": 0.9995}
HARMFUL = {"max_abs_dice_difference": 0.0006, "min_foreground_agreement": 0.9989}   # measured, docs/benchmarks/precision.md


def test_auto_precision_on_a_cpu_follows_the_measured_table_as_predict_does(monkeypatch):
    """Hardware bf16 alone is not enough: train's auto picks bf16 only where predict's would (measured harmless)."""
    for fast, evidence, expected in ((True, HARMLESS, "bf16"), (True, HARMFUL, "fp32"), (False, HARMLESS, "fp32"),
                                     (True, {"max_abs_dice_difference": None, "min_foreground_agreement": None},
                                      "fp32")):
        monkeypatch.setattr(acceleration, "cpu_has_fast_bf16", lambda fast=fast: fast)
        monkeypatch.setattr(acceleration, "BF16_CPU_EVIDENCE", evidence)
        assert training_precision("auto", "cpu") == expected == resolve_precision("auto", torch.device("cpu"))
    monkeypatch.setattr(acceleration, "BF16_CPU_EVIDENCE", HARMFUL)
    assert "not measured harmless" in precision.auto_note("cpu")
    monkeypatch.setattr(acceleration, "BF16_CPU_EVIDENCE", HARMLESS)
    monkeypatch.setattr(acceleration, "cpu_has_fast_bf16", lambda: False)
    assert "no hardware bf16" in precision.auto_note("cpu")


def test_the_measured_table_keeps_auto_fp32_even_on_hardware_bf16(monkeypatch):
    """docs/benchmarks/precision.md: foreground agreement 0.9989 < 0.999 on a trained model, so auto is fp32 everywhere."""
    assert acceleration.BF16_CPU_EVIDENCE == HARMFUL and not acceleration.bf16_measured_harmless()
    monkeypatch.setattr(acceleration, "cpu_has_fast_bf16", lambda: True)
    assert training_precision("auto", "cpu") == "fp32" == resolve_precision("auto", torch.device("cpu"))


def test_auto_precision_on_cuda_and_explicit_choices(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert training_precision("auto", "cuda") == "fp16"
    assert training_precision("fp32", "cuda") == "fp32" and training_precision("bf16", "cpu") == "bf16"
    with pytest.raises(UserError, match="fp16 needs CUDA"):
        training_precision("fp16", "cpu")
    factory, scaler = make_autocast(torch.device("cpu"), "bf16")
    with factory():
        out = torch.nn.Linear(4, 4)(torch.ones(2, 4))
    assert out.dtype == torch.bfloat16 and scaler is None


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    return make_work_dir(tmp_path_factory.mktemp("precision"))


def test_bf16_cpu_run_keeps_fp32_weights_and_records_it(prepared, tmp_path, capsys):
    dataset, work = copy_work(*prepared, tmp_path)
    common = ["train", str(dataset), "--work-dir", str(work), "-f", "0", "--epochs", "1", "--iterations-per-epoch",
              "2", "--quiet", "--num-workers", "0", "--threads", "1"]
    assert segkit_main(common + ["--precision", "fp16"]) == 2
    assert "fp16 needs CUDA" in capsys.readouterr().err
    assert segkit_main(common + ["--precision", "bf16"]) == 0
    fold = work / "models" / "3d_fullres" / "fold_0"
    assert "precision bf16" in json.loads((fold / "schedule.json").read_text())["notes"]
    final = torch.load(fold / "checkpoint_final.pt", weights_only=True)
    assert all(v.dtype == torch.float32 for v in final["network_state"].values() if v.is_floating_point())
    log = [json.loads(line) for line in (fold / "log.jsonl").read_text().splitlines()]
    assert log[0]["val_mean_dice"] is not None and log[0]["train_loss"] > 0
