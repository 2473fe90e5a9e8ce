"""Loading a model folder for inference (segkit.inference.model): each fold's weights onto one evaluation network,
the folds checked against each other and plans.json, the device resolved; every refusal names the checkpoint."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from inference_fixtures import make_model_dir

from segkit.errors import UserError
from segkit.inference.model import load_model, resolve_device

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _checkpoint(model_dir: Path, fold: str = "0") -> Path:
    return model_dir / f"fold_{fold}" / "checkpoint_final.pt"


def _edit(path: Path, **changes) -> None:
    """Rewrite a checkpoint with some fields changed."""
    payload = torch.load(path, weights_only=True)
    torch.save({**payload, **changes}, path)


def test_each_folds_weights_are_loaded_and_the_network_runs_one_at_a_time(tmp_path):
    model_dir = make_model_dir(tmp_path / "work", num_channels=2, folds=("0", "1"))
    model = load_model(model_dir, device="cpu")
    assert (model.configuration, model.folds, model.device, model.checkpoint) == ("3d_fullres", ["0", "1"],
                                                                                  torch.device("cpu"), "final")
    assert (model.num_channels, model.network_in_channels, model.num_outputs, model.label_mode) == (2, 2, 4, "softmax")
    assert model.entry.name == "3d_fullres" and not model.network.training and model.network.deep_supervision is False
    x = torch.randn(1, 2, 8, 16, 16)
    outputs = []
    with torch.no_grad():
        for fold, network in zip(["0", "1"], model.fold_networks()):
            saved = torch.load(_checkpoint(model_dir, fold), weights_only=True)["network_state"]
            assert all(torch.equal(network.state_dict()[k], v) for k, v in saved.items())
            outputs.append(network(x))
    assert outputs[0].shape == (1, 4, 8, 16, 16) and not torch.equal(outputs[0], outputs[1])
    only_one = load_model(model_dir, folds=["1"], device="cpu")
    assert only_one.folds == ["1"] and len(only_one.fold_states) == 1


@pytest.mark.parametrize("changes, words", [
    ({"configuration": "2d"}, "fold 1 was trained as 2d, not 3d_fullres"),
    ({"in_channels": 3}, "checkpoint expects 3 input channels, plans.json's 3d_fullres 2"),
    ({"num_outputs": 2}, "checkpoint has 2 outputs, plans.json 4"),
    ({"architecture": {"family": "unet"}}, "fold 1 has a different architecture from fold 0"),
])
def test_folds_that_disagree_with_each_other_or_the_plan_are_refused_naming_the_checkpoint(tmp_path, changes, words):
    model_dir = make_model_dir(tmp_path / "work", num_channels=2, folds=("0", "1"))
    _edit(_checkpoint(model_dir, "1"), **changes)
    with pytest.raises(UserError, match=words) as error:
        load_model(model_dir, device="cpu")
    assert error.value.path == str(_checkpoint(model_dir, "1"))


def test_weights_that_do_not_fit_the_architecture_are_one_user_error(tmp_path):
    model_dir = make_model_dir(tmp_path / "work", num_channels=2)
    state = torch.load(_checkpoint(model_dir), weights_only=True)["network_state"]
    _edit(_checkpoint(model_dir), network_state={key: value[..., :1] for key, value in state.items()})
    with pytest.raises(UserError, match="weights do not fit the architecture"):
        load_model(model_dir, device="cpu")


def test_the_device_is_cpu_or_an_available_cuda_and_anything_else_is_a_user_error():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto") == torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="--device cuda:1 requested but no CUDA device is available"):
            resolve_device("cuda:1")
    with pytest.raises(UserError, match="unknown device 'tpu'"):
        resolve_device("tpu")
