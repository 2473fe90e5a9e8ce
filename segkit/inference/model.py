"""Load a trained model folder (WORK/models/<config>): plans, dataset.json and the folds' weights."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from segkit import logs
from segkit.errors import UserError
from segkit.jsonio import read_json
from segkit.models.folder import find_folds, previous_stage_dir, resolve_model_dir
from segkit.models.pruning import apply_pruning
from segkit.plans import (
    configuration_entry,
    label_mode_of,
    network_in_channels,
    previous_stage_of,
    read_plans_dict,
    spatial_dims_of,
)
from segkit.preprocessing.orientation import LEGACY_WARNING, plans_orientation
from segkit.workdir import model_dataset_path, plans_path

if TYPE_CHECKING:               # torch is imported where a model is loaded, not with this module
    import torch
    from torch import nn

@dataclass
class LoadedModel:
    """Everything inference needs: plans, the configuration's entry, one network and each fold's weights."""

    model_dir: Path
    plans: dict
    dataset: dict
    configuration: str
    network: nn.Module
    fold_states: list[dict]
    folds: list[str]
    device: torch.device
    checkpoint: str = "final"
    extra: dict = field(default_factory=dict)
    previous: LoadedModel | None = None   # a cascade stage's previous stage (same folds), run first on each case

    @property
    def entry(self) -> dict:
        """The plans entry of the model's configuration."""
        return configuration_entry(self.plans, self.configuration, self.model_dir)

    @property
    def num_channels(self) -> int:
        """Image channels the network expects."""
        return int(self.plans["num_channels"])

    @property
    def num_outputs(self) -> int:
        """Network output channels."""
        return int(self.plans["num_outputs"])

    @property
    def label_mode(self) -> str:
        """'softmax' or 'sigmoid' (region-based)."""
        return label_mode_of(self.plans)


def resolve_device(device: str) -> torch.device:
    """torch.device for 'auto' (CUDA when available), 'cpu' or 'cuda[:n]'; UserError when CUDA is absent."""
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"--device {device} requested but no CUDA device is available")
    try:
        return torch.device(device)
    except RuntimeError:
        raise UserError(f"unknown device {device!r}; use auto, cpu or cuda") from None


def check_consistent(checkpoints: list[tuple[str, Path, dict]], plans: dict, configuration: str) -> None:
    """Refuse folds whose architectures differ from each other or whose channels differ from plans."""
    first_fold, first_path, first = checkpoints[0]
    in_channels = network_in_channels(plans, configuration)
    for fold, path, checkpoint in checkpoints:
        trained = str(checkpoint.get("configuration") or configuration)
        if trained != configuration:
            raise UserError(f"fold {fold} was trained as {trained}, not {configuration}: give -c {trained} or the "
                            f"{configuration} model folder", path)
        if checkpoint["architecture"] != first["architecture"]:
            raise UserError(f"fold {fold} has a different architecture from fold {first_fold}", path)
        if int(checkpoint["in_channels"]) != in_channels:
            raise UserError(f"checkpoint expects {checkpoint['in_channels']} input channels, plans.json's {configuration} "
                            f"{in_channels}", path)
        if int(checkpoint["num_outputs"]) != int(plans["num_outputs"]):
            raise UserError(f"checkpoint has {checkpoint['num_outputs']} outputs, plans.json "
                            f"{plans['num_outputs']}", path)


def load_model(model: str | Path, configuration: str | None = None, folds: Sequence[str] | None = None,
               checkpoint: str = "final", device: str = "auto") -> LoadedModel:
    """Load a model folder's plans and the chosen folds' checkpoints onto one network on the device."""

    from segkit.inference.acceleration import prepare_for_inference
    from segkit.models.checkpoint import load_checkpoint
    from segkit.networks import build_network

    model_dir, name = resolve_model_dir(model, configuration)
    plans = read_plans_dict(plans_path(model_dir))
    dataset_path = model_dataset_path(model_dir)
    dataset = read_json(dataset_path, "dataset.json") if dataset_path.is_file() else {}
    loaded = [(fold, path, load_checkpoint(path)) for fold, path in find_folds(model_dir, folds, checkpoint)]
    check_consistent(loaded, plans, name)
    first = loaded[0][2]
    arch = dict(first["architecture"])
    network = build_network(arch, int(first["in_channels"]), int(first["num_outputs"]))
    network.deep_supervision = False  # type: ignore[assignment]  # a plain flag; Module.__setattr__ is typed for tensors
    apply_pruning(network, model_dir)   # UNet++: the sub-network chosen on validation (segkit choose-pruning)
    prepare_for_inference(network, spatial_dims_of(arch))
    states = []
    for _, path, ckpt in loaded:
        try:
            network.load_state_dict(ckpt["network_state"])
        except RuntimeError as err:
            raise UserError(f"weights do not fit the architecture ({str(err).splitlines()[0][:200]})", path) from None
        states.append(ckpt["network_state"])
    torch_device = resolve_device(device)
    network.to(torch_device).eval()
    if plans_orientation(plans) is None:
        logs.warning(f"{model_dir}: {LEGACY_WARNING}", event="model_warning", model=str(model_dir))
    fold_names = [f for f, _, _ in loaded]
    return LoadedModel(model_dir, plans, dataset, name, network, states, fold_names, torch_device, checkpoint,
                       previous=load_previous_stage(model_dir, plans, name, fold_names, checkpoint, device))


def load_previous_stage(model_dir: Path, plans: dict, configuration: str, folds: list[str], checkpoint: str,
                        device: str) -> LoadedModel | None:
    """A cascade stage's previous stage, from the model folder beside it, with the same folds; None otherwise."""
    previous = previous_stage_of(plans, configuration)
    if previous is None:
        return None
    folder = previous_stage_dir(model_dir, configuration, previous)
    try:
        return load_model(folder, previous, folds, checkpoint, device)
    except UserError as err:
        raise UserError(f"{configuration} needs {previous} with the same folds ({', '.join(folds)}): {err.message}",
                        err.path) from None
