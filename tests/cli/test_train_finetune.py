"""`segkit train --pretrained` end to end on a tiny phantom, and `--resume` extending a finished run."""

from __future__ import annotations

import json

import pytest
import torch
from training_data import copy_work, make_work_dir

from segkit.cli import main as segkit_main
from segkit.training.extension import resumed_recipe
from segkit.training.finetuning import warmup_factor
from segkit.training.schedule import poly_lr

TINY = ["--iterations-per-epoch", "2", "--quiet", "--num-workers", "0", "--threads", "1", "-f", "all"]


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """A prepared work dir and a model trained on it for 2 epochs (the source)."""
    root = tmp_path_factory.mktemp("finetune")
    dataset, work = make_work_dir(root)
    source_dataset, source_work = copy_work(dataset, work, root / "source")
    assert segkit_main(["train", str(source_dataset), "--work-dir", str(source_work), "--epochs", "2", *TINY]) == 0
    return dataset, work, source_work / "models" / "3d_fullres"


def _train(dataset, work, *extra):
    return segkit_main(["train", str(dataset), "--work-dir", str(work), *TINY, *extra])


def _fold(work):
    return work / "models" / "3d_fullres" / "fold_all"


def _log(work):
    return [json.loads(line) for line in (_fold(work) / "log.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_frozen_encoder_keeps_pretrained_weights_and_resume_keeps_the_finetuning_lr(pretrained, tmp_path, capsys):
    dataset, work, source = pretrained
    dataset, work = copy_work(dataset, work, tmp_path)
    assert _train(dataset, work, "--epochs", "2", "--pretrained", str(source), "--freeze-encoder", "2") == 0
    assert "loaded 28 tensors (100.0% of the parameters)" in capsys.readouterr().out
    before = torch.load(source / "fold_all" / "checkpoint_final.pt", weights_only=True)["network_state"]
    after = torch.load(_fold(work) / "checkpoint_final.pt", weights_only=True)["network_state"]
    encoder = [k for k in before if k.startswith("encoder.")]
    assert encoder and all(torch.equal(before[k], after[k]) for k in encoder), "frozen encoder must not move"
    assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith("decoder."))
    schedule = json.loads((_fold(work) / "schedule.json").read_text())
    tuning = schedule["fine_tuning"]
    assert tuning["lr"] == pytest.approx(3e-3) and tuning["freeze_encoder_epochs"] == 2
    assert tuning["warmup_starts_at_step"] == 4
    assert schedule["pretrained"]["reinitialised"] == [] and schedule["pretrained"]["loaded_tensors"] == 28
    assert any("fine-tuning from model folder" in note for note in schedule["notes"])

    # --resume --epochs 3 extends the finished run with the fine-tuning lr and warm-up read back from schedule.json
    assert _train(dataset, work, "--resume", "--epochs", "3") == 0
    log = _log(work)
    assert [r["epoch"] for r in log] == [0, 1, 2] and log[-1]["step"] == 6
    tuning = json.loads((_fold(work) / "schedule.json").read_text())["fine_tuning"]
    expected = poly_lr(3e-3, 5, 6) * warmup_factor(5, 4, tuning["warmup_steps"])
    assert log[-1]["lr"] == pytest.approx(expected)
    after = torch.load(_fold(work) / "checkpoint_final.pt", weights_only=True)["network_state"]
    assert any(not torch.equal(before[k], after[k]) for k in encoder), "the encoder trains after the freeze"


@pytest.mark.slow
def test_resume_extends_a_finished_run(pretrained, tmp_path, capsys):
    dataset, work, _ = pretrained
    dataset, work = copy_work(dataset, work, tmp_path)
    assert _train(dataset, work, "--epochs", "2") == 0
    assert _train(dataset, work, "--resume", "--epochs", "4") == 0
    assert "resume: epochs 2 -> 4 (--resume --epochs)" in capsys.readouterr().out
    log = _log(work)
    assert [r["epoch"] for r in log] == [0, 1, 2, 3] and log[-1]["step"] == 8
    assert log[2]["lr"] == pytest.approx(poly_lr(1e-2, 5, 8)), "poly decay follows the extended total"
    final = torch.load(_fold(work) / "checkpoint_final.pt", weights_only=True)
    assert final["epoch"] == 3 and final["schedule"]["epochs"] == 4
    schedule = json.loads((_fold(work) / "schedule.json").read_text())
    assert schedule["epochs"] == 4 and schedule["extensions"] == [{"at_epoch": 2, "change": "epochs 2 -> 4 (--resume --epochs)"}]
    capsys.readouterr()
    assert _train(dataset, work, "--resume", "--epochs", "4") == 2
    assert "already run 4 epochs; ask for more" in capsys.readouterr().err
    assert resumed_recipe(_fold(work), "auto") == "nnunet", "a budgeted resume keeps the run's own recipe"
    assert resumed_recipe(_fold(work), "short-cpu") == "short-cpu"


def test_finetune_options_need_pretrained(pretrained, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:      # the help text formats (argparse %-expands it)
        segkit_main(["train", "--help"])
    assert exit_info.value.code == 0 and "--freeze-encoder EPOCHS" in capsys.readouterr().out
    dataset, work, _ = pretrained
    assert _train(dataset, work, "--epochs", "1", "--freeze-encoder", "1") == 2
    assert "need --pretrained SOURCE" in capsys.readouterr().err
    assert _train(dataset, work, "--epochs", "1", "--pretrained", str(tmp_path / "missing.zip")) == 2
    assert "model package not found" in capsys.readouterr().err


@pytest.mark.slow
def test_stunet_s_model_fine_tunes_from_another_stunet_s(tmp_path, capsys):
    """STU-Net checkpoints work with --pretrained: a stunet-s run loads every tensor of another stunet-s run."""
    from segkit.networks.registry import get_family

    dataset, work = make_work_dir(tmp_path / "prep")
    plans = json.loads((work / "plans.json").read_text())
    arch = plans["configurations"]["3d_fullres"]["architecture"]
    stages = len(arch["strides"])
    arch.update({"family": "stunet-s", **get_family("stunet-s").stage_defaults(stages, 1)})
    (work / "plans.json").write_text(json.dumps(plans))
    source_dataset, source_work = copy_work(dataset, work, tmp_path / "source")
    assert _train(source_dataset, source_work, "--epochs", "1") == 0
    source = source_work / "models" / "3d_fullres"
    capsys.readouterr()
    assert _train(dataset, work, "--epochs", "1", "--pretrained", str(source)) == 0
    assert "(100.0% of the parameters); label set same (heads loaded)" in capsys.readouterr().out
    report = json.loads((_fold(work) / "schedule.json").read_text())["pretrained"]
    assert report["reinitialised"] == [] and report["skipped"] == {} and report["missing"] == []
    assert report["loaded_parameters"] == report["total_parameters"] > 0
    after = torch.load(_fold(work) / "checkpoint_final.pt", weights_only=True)
    assert after["architecture"]["family"] == "stunet-s"
