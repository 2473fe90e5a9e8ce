"""--pretrained: which tensors are loaded / re-initialised, first-conv channel mapping, verified packages."""

from __future__ import annotations

import copy
import json
import zipfile
from pathlib import Path

import pytest
import torch
from inference_fixtures import make_model_dir, tiny_plans

from segkit.cli import main
from segkit.errors import UserError
from segkit.networks import build_network
from segkit.plans import Plans
from segkit.training.pretrained import (
    PretrainedSource,
    labels_match,
    load_pretrained,
    map_input_channels,
    resolve_source,
    set_encoder_trainable,
)


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    """Packages unpack into the test's folder, never the user's cache."""
    monkeypatch.setenv("SEGKIT_CACHE", str(tmp_path / "cache"))


def _source(tmp_path: Path, num_channels: int = 4, channel_names: list[str] | None = None) -> tuple[Path, dict]:
    """A model folder (fold 0) with the given channel names; returns it and its plans."""
    model_dir = make_model_dir(tmp_path / "src", num_channels=num_channels)
    plans = json.loads((model_dir / "plans.json").read_text())
    if channel_names:
        plans["channel_names"] = channel_names
        (model_dir / "plans.json").write_text(json.dumps(plans))
    return model_dir, plans


def _target(plans: dict, seed: int = 7) -> tuple[torch.nn.Module, dict]:
    """A freshly initialised network for target plans, and a copy of its initial state."""
    torch.manual_seed(seed)
    model = build_network(plans["configurations"]["3d_fullres"]["architecture"], plans["num_channels"],
                          plans["num_outputs"])
    return model, copy.deepcopy(model.state_dict())


def _saved_state(model_dir: Path) -> dict:
    return torch.load(model_dir / "fold_0" / "checkpoint_final.pt", weights_only=True)["network_state"]


@pytest.mark.parametrize("outputs", [
    {"tumour": [1], "cyst": [2]},                                  # fewer outputs: head shapes differ
    {"necrosis": [1], "oedema": [2], "enhancing": [3]},            # same count, a renamed label: shapes equal
])
def test_label_set_differs_reinitialises_exactly_the_heads(tmp_path, outputs):
    model_dir, source_plans = _source(tmp_path)
    target_plans = copy.deepcopy(source_plans)
    target_plans["outputs"] = outputs
    target_plans["labels"] = {"background": 0} | {k: v[0] for k, v in outputs.items()}
    target_plans["num_outputs"] = len(outputs) + 1
    model, initial = _target(target_plans)
    report = load_pretrained(model, resolve_source(str(model_dir)), Plans.from_json(target_plans), 3)
    source, loaded = _saved_state(model_dir), model.state_dict()
    heads = [k for k in loaded if k.startswith("heads.")]
    assert heads and sorted(report.reinitialised) == sorted(heads)
    for key, value in loaded.items():
        if key in heads:
            assert torch.equal(value, initial[key]), f"{key} should keep its fresh initialisation"
            if key.endswith("weight"):   # He init zeroes every bias, the source's as well as the fresh one's
                assert value.shape != source[key].shape or not torch.equal(value, source[key])
        else:
            assert torch.equal(value, source[key]), f"{key} should be the pretrained tensor"
    assert report.loaded == [k for k in loaded if k not in heads] and not report.skipped and not report.missing
    assert report.label_set.startswith("differs")


def test_same_label_set_loads_the_heads_too(tmp_path):
    model_dir, source_plans = _source(tmp_path)
    model, _ = _target(source_plans)
    checkpoint = resolve_source(str(model_dir / "fold_0" / "checkpoint_final.pt"))
    report = load_pretrained(model, checkpoint, Plans.from_json(source_plans), 3)
    source = _saved_state(model_dir)
    assert all(torch.equal(v, source[k]) for k, v in model.state_dict().items())
    assert report.reinitialised == [] and report.loaded_parameters == report.total_parameters
    view = Plans.from_json(source_plans)
    assert labels_match(view, view) and not labels_match(None, view)


def test_first_conv_channels_mapped_by_name(tmp_path):
    model_dir, _ = _source(tmp_path, channel_names=["FLAIR", "T1", "T1ce", "T2"])
    target_plans = tiny_plans(num_channels=2)
    target_plans["channel_names"] = ["t2", "T1"]            # case-insensitive, another order
    model, _ = _target(target_plans)
    report = load_pretrained(model, resolve_source(str(model_dir)), Plans.from_json(target_plans), 3)
    source = _saved_state(model_dir)["encoder.0.0.0.weight"]
    mapped = model.state_dict()["encoder.0.0.0.weight"]
    assert mapped.shape[1] == 2
    assert torch.equal(mapped[:, 0], source[:, 3]) and torch.equal(mapped[:, 1], source[:, 1])
    assert report.channel_map == ["t2 <- T2", "T1 <- T1"] and "encoder.0.0.0.weight" in report.loaded


def test_first_conv_unmatched_channels_get_the_mean(tmp_path):
    model_dir, _ = _source(tmp_path, num_channels=2, channel_names=["T1", "T2"])
    target_plans = tiny_plans(num_channels=3)
    target_plans["channel_names"] = ["PD", "T2", "ADC"]
    model, _ = _target(target_plans)
    report = load_pretrained(model, resolve_source(str(model_dir)), Plans.from_json(target_plans), 3)
    source = _saved_state(model_dir)["encoder.0.0.0.weight"]
    mapped = model.state_dict()["encoder.0.0.0.weight"]
    mean = source.mean(dim=1)
    assert torch.allclose(mapped[:, 0], mean) and torch.allclose(mapped[:, 2], mean)
    assert torch.equal(mapped[:, 1], source[:, 1])
    assert report.channel_map[0] == "PD <- mean of 2 source channels"


def test_one_channel_model_to_four_channels_repeats_its_weights():
    weight = torch.randn(8, 1, 1, 3, 3)
    mapped, _ = map_input_channels(weight, ["CT"], ["FLAIR", "T1", "T1ce", "T2"], 4)
    assert mapped.shape == (8, 4, 1, 3, 3) and all(torch.equal(mapped[:, i], weight[:, 0]) for i in range(4))
    unnamed, _ = map_input_channels(weight.repeat(1, 2, 1, 1, 1), None, None, 2)
    assert torch.equal(unnamed, weight.repeat(1, 2, 1, 1, 1))


def test_other_architecture_loads_what_matches_or_refuses(tmp_path):
    model_dir, source_plans = _source(tmp_path)
    wider = copy.deepcopy(source_plans)
    wider["configurations"]["3d_fullres"]["architecture"]["features_per_stage"] = [4, 10]
    wider["configurations"]["3d_fullres"]["architecture"]["blocks_per_stage"] = [2, 1]
    model, initial = _target(wider)
    report = load_pretrained(model, resolve_source(str(model_dir)), Plans.from_json(wider), 3)
    assert "encoder.1.0.0.weight" in report.skipped and "encoder.0.0.0.weight" in report.loaded
    assert "encoder.0.1.0.weight" in report.missing
    assert torch.equal(model.state_dict()["encoder.1.0.0.weight"], initial["encoder.1.0.0.weight"])
    assert torch.equal(model.state_dict()["encoder.0.0.0.weight"], _saved_state(model_dir)["encoder.0.0.0.weight"])
    other = copy.deepcopy(source_plans)
    other["configurations"]["3d_fullres"]["architecture"]["features_per_stage"] = [5, 7]
    model, _ = _target(other)
    with pytest.raises(UserError, match="no weight of the pretrained model matches"):
        load_pretrained(model, resolve_source(str(model_dir)), Plans.from_json(other), 3)


def test_package_is_verified_and_tampered_package_refused(tmp_path):
    model_dir, source_plans = _source(tmp_path)
    package = tmp_path / "model.zip"
    assert main(["export-model", str(model_dir), "-o", str(package)]) == 0
    source = resolve_source(str(package))
    assert "checksums verified" in source.description and dict(source.plans.raw) == source_plans
    model, _ = _target(source_plans)
    load_pretrained(model, source, Plans.from_json(source_plans), 3)
    assert all(torch.equal(v, _saved_state(model_dir)[k]) for k, v in model.state_dict().items())
    tampered = tmp_path / "tampered.zip"
    with zipfile.ZipFile(package) as old, zipfile.ZipFile(tampered, "w") as new:
        for info in old.infolist():
            data = old.read(info.filename)
            if info.filename.endswith(".pt"):
                state = _saved_state(model_dir)
                state["heads.0.weight"] += 1.0                # a modified weight, old checksum in the manifest
                payload = torch.load(model_dir / "fold_0" / "checkpoint_final.pt", weights_only=True)
                payload["network_state"] = state
                torch.save(payload, tmp_path / "modified.pt")
                data = (tmp_path / "modified.pt").read_bytes()
            new.writestr(info.filename, data)
    with pytest.raises(UserError, match="checksum mismatch for (3d_fullres/)?fold_0/checkpoint_final.pt"):
        resolve_source(str(tampered))


def test_missing_source_and_unknown_labels(tmp_path):
    with pytest.raises(UserError, match="pretrained source not found"):
        resolve_source(str(tmp_path / "nothing"))
    model_dir, source_plans = _source(tmp_path)
    bare = tmp_path / "bare.pt"
    bare.write_bytes((model_dir / "fold_0" / "checkpoint_final.pt").read_bytes())
    model, _ = _target(source_plans)
    report = load_pretrained(model, PretrainedSource(bare, None, "bare"), Plans.from_json(source_plans), 3)
    assert report.label_set.startswith("unknown") and all(k.startswith("heads.") for k in report.reinitialised)


def test_freeze_encoder_toggles_only_the_encoder(tmp_path):
    model, _ = _target(tiny_plans())
    assert set_encoder_trainable(model, False) > 0
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert frozen and all(n.startswith("encoder.") for n in frozen)
    assert any(n.startswith("encoder.") for n, _ in model.named_parameters())
    set_encoder_trainable(model, True)
    assert all(p.requires_grad for p in model.parameters())
