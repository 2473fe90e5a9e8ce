"""Load a trained model folder (WORK/models/<config>): plans, dataset.json and the folds' weights."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from segkit import logs
from segkit.errors import UserError
from segkit.jsonio import read_json
from segkit.models.folder import find_folds, find_onnx_folds, previous_stage_dir, resolve_model_dir
from segkit.models.pruning import apply_pruning
from segkit.plans import Configuration, Plans, read_plans, spatial_dims_of
from segkit.preprocessing.orientation import LEGACY_WARNING, plans_orientation
from segkit.workdir import model_dataset_path, plans_path

if TYPE_CHECKING:               # torch is imported where a model is loaded, not with this module
    import torch
    from torch import nn

@dataclass
class LoadedModel:
    """Everything inference needs: plans, the configuration's entry, one network and each fold's weights."""

    model_dir: Path
    plans: Plans
    dataset: dict
    configuration: str
    network: nn.Module
    fold_states: list[dict]
    folds: list[str]
    device: torch.device
    checkpoint: str = "final"
    extra: dict = field(default_factory=dict)
    previous: LoadedModel | None = None   # a cascade stage's previous stage (same folds), run first on each case
    backend: str = "torch"                # segkit.inference.backends: what computes the logits
    fold_runners: list[nn.Module] = field(default_factory=list)   # ONNX backends: one network per fold
    backend_precision: str | None = None  # ONNX backends: the arithmetic they run in

    def fold_networks(self) -> Iterator[nn.Module]:
        """Each fold's network in turn (torch: the one network with that fold's weights loaded)."""
        if self.fold_runners:
            yield from self.fold_runners
            return
        for state in self.fold_states:
            if len(self.fold_states) > 1:
                self.network.load_state_dict(state)
            yield self.network

    @property
    def entry(self) -> Configuration:
        """The model's configuration (its plans entry)."""
        return self.plans.configuration(self.configuration)

    @property
    def num_channels(self) -> int:
        """Image channels the network expects."""
        return self.plans.num_channels

    @property
    def network_in_channels(self) -> int:
        """Channels the network takes (a cascade stage's previous-stage one-hot channels included)."""
        return self.plans.in_channels(self.configuration)

    @property
    def num_outputs(self) -> int:
        """Network output channels."""
        return self.plans.num_outputs

    @property
    def label_mode(self) -> str:
        """'softmax' or 'sigmoid' (region-based)."""
        return self.plans.label_mode


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


def check_consistent(checkpoints: list[tuple[str, Path, dict]], plans: Plans, configuration: str) -> None:
    """Refuse folds whose architectures differ from each other or whose channels differ from plans."""
    first_fold, first_path, first = checkpoints[0]
    in_channels = plans.in_channels(configuration)
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
        if int(checkpoint["num_outputs"]) != plans.num_outputs:
            raise UserError(f"checkpoint has {checkpoint['num_outputs']} outputs, plans.json "
                            f"{plans.num_outputs}", path)


def _backend_device(backend: str, device: str) -> torch.device:
    """The device of an ONNX backend: the CPU (UserError for another one asked for by name)."""
    if device not in ("auto", "cpu"):
        raise UserError(f"--backend {backend} runs on the CPU; drop --device {device} or use --backend torch")
    return resolve_device("cpu")


def load_onnx_model(model_dir: Path, name: str, plans: Plans, dataset: dict, found: list[tuple[str, Path]],
                    backend: str, precision: str, device: str) -> LoadedModel:
    """An ONNX model folder's folds as runners of an ONNX backend (torch cannot run them)."""
    from segkit.inference.backends import ONNX_BACKENDS, backend_available, backend_precision, onnx_runner
    from segkit.models.onnx import read_network

    if backend == "auto":
        backend = next((b for b in ONNX_BACKENDS if backend_available(b)), "onnxruntime")
    if backend not in ONNX_BACKENDS:
        raise UserError("holds ONNX networks (export-model --format onnx): run it with --backend onnxruntime or "
                        "openvino", model_dir)
    arithmetic = backend_precision(backend, precision)
    dims = plans.configuration(name).spatial_dims
    runners = [onnx_runner(backend, read_network(path, plans.in_channels(name), plans.num_outputs, dims), arithmetic)
               for _, path in found]
    folds = [f for f, _ in found]
    checkpoint = "onnx"
    return LoadedModel(model_dir, plans, dataset, name, runners[0], [], folds, _backend_device(backend, device),
                       checkpoint, previous=load_previous_stage(model_dir, plans, name, folds, checkpoint, device,
                                                                backend, precision),
                       backend=backend, fold_runners=runners, backend_precision=arithmetic)


def load_model(model: str | Path, configuration: str | None = None, folds: Sequence[str] | None = None,
               checkpoint: str = "final", device: str = "auto", backend: str = "torch",
               precision: str = "auto") -> LoadedModel:
    """Load a model folder's plans and the chosen folds' networks for a backend.

    torch: the checkpoints onto one network on the device. onnxruntime / openvino: each fold's ONNX network
    (an ONNX folder's files, or the checkpoints exported in memory). "auto": torch, or the first installed ONNX
    backend for an ONNX folder (the measured choice between backends is segkit.inference.backend_choice's).
    """

    from segkit.inference.acceleration import prepare_for_inference
    from segkit.inference.backends import ONNX_BACKENDS, check_backend
    from segkit.models.checkpoint import load_checkpoint
    from segkit.networks import build_network

    check_backend(backend)
    model_dir, name = resolve_model_dir(model, configuration)
    plans = read_plans(plans_path(model_dir))
    dataset_path = model_dataset_path(model_dir)
    dataset = read_json(dataset_path, "dataset.json") if dataset_path.is_file() else {}
    if plans_orientation(plans) is None:
        logs.warning(f"{model_dir}: {LEGACY_WARNING}", event="model_warning", model=str(model_dir))
    onnx_found = find_onnx_folds(model_dir, folds)
    if onnx_found:
        return load_onnx_model(model_dir, name, plans, dataset, onnx_found, backend, precision, device)
    loaded = [(fold, path, load_checkpoint(path)) for fold, path in find_folds(model_dir, folds, checkpoint)]
    check_consistent(loaded, plans, name)
    fold_names = [f for f, _, _ in loaded]
    if backend in ONNX_BACKENDS:
        return _exported_model(model_dir, name, plans, dataset, loaded, checkpoint, backend, precision, device)
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
    return LoadedModel(model_dir, plans, dataset, name, network, states, fold_names, torch_device, checkpoint,
                       previous=load_previous_stage(model_dir, plans, name, fold_names, checkpoint, device))


def _exported_model(model_dir: Path, name: str, plans: Plans, dataset: dict, loaded: list[tuple[str, Path, dict]],
                    checkpoint: str, backend: str, precision: str, device: str) -> LoadedModel:
    """A torch model folder's folds exported to ONNX in memory and run by an ONNX backend."""
    from segkit.inference.backends import backend_precision, onnx_runner
    from segkit.models.onnx import dynamic_spatial, export_network, metadata, plain_network

    arithmetic = backend_precision(backend, precision)
    patch = list(plans.configuration(name).patch_size)
    runners = []
    for _, path, ckpt in loaded:
        try:
            network = plain_network(ckpt, model_dir)
        except RuntimeError as err:
            raise UserError(f"weights do not fit the architecture ({str(err).splitlines()[0][:200]})", path) from None
        props = metadata(dict(ckpt["architecture"]), int(ckpt["in_channels"]), int(ckpt["num_outputs"]), plans, name)
        data = export_network(network, int(ckpt["in_channels"]), patch, props, dynamic_spatial(ckpt))
        runners.append(onnx_runner(backend, data, arithmetic))
    folds = [f for f, _, _ in loaded]
    return LoadedModel(model_dir, plans, dataset, name, runners[0], [], folds, _backend_device(backend, device),
                       checkpoint, previous=load_previous_stage(model_dir, plans, name, folds, checkpoint, device,
                                                                backend, precision),
                       backend=backend, fold_runners=runners, backend_precision=arithmetic)


def load_previous_stage(model_dir: Path, plans: Plans, configuration: str, folds: list[str], checkpoint: str,
                        device: str, backend: str = "torch", precision: str = "auto") -> LoadedModel | None:
    """A cascade stage's previous stage, from the model folder beside it, with the same folds; None otherwise."""
    previous = plans.configuration(configuration).previous_stage
    if previous is None:
        return None
    folder = previous_stage_dir(model_dir, configuration, previous)
    try:
        return load_model(folder, previous, folds, checkpoint, device, backend, precision)
    except UserError as err:
        raise UserError(f"{configuration} needs {previous} with the same folds ({', '.join(folds)}): {err.message}",
                        err.path) from None
