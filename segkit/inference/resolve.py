"""What `-m MODEL` names, loaded: a package's or folder's configuration(s) as a ready `ModelEnsemble`.

- a model package ``.zip`` (``segkit export-model``): its configurations (one, or find-best's
  ensemble of two) and the post-processing it carries;
- a work dir or model folder: `segkit.inference.choice.chosen_model`.

Post-processing follows the model it was decided for: find-best's ``best.members`` must equal
the configurations that run, otherwise none is applied (and the reason is kept as a note).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from segkit.errors import UserError
from segkit.inference.choice import ModelChoice, chosen_model, configuration_names

if TYPE_CHECKING:
    from segkit.inference.predictor import InferenceOptions, ModelEnsemble


def _package_choice(package: Path, configuration: str | Sequence[str] | None, checkpoint: str) -> ModelChoice:
    """The verified, extracted package's configurations (all, or the -c subset) and its post-processing."""
    from segkit.export.package import sha256_of
    from segkit.export.unpack import unpack_model

    unpacked = unpack_model(package)
    names = configuration_names(configuration) or unpacked.configurations
    unknown = [n for n in names if n not in unpacked.model_dirs]
    if unknown:
        raise UserError(f"the package holds configuration(s) {', '.join(unpacked.configurations)}, not "
                        f"{', '.join(unknown)}", package)
    if checkpoint not in ("final", unpacked.checkpoint):
        raise UserError(f"the package holds checkpoint_{unpacked.checkpoint}, not checkpoint_{checkpoint}", package)
    whole = sorted(names) == sorted(unpacked.configurations)
    note = None if whole or not unpacked.postprocessing else "a part of the packaged ensemble runs without its post-processing"
    info = {"package": str(package), "package_sha256": sha256_of(package),
            "package_segkit_version": unpacked.manifest.get("segkit_version")}
    if unpacked.manifest.get("network_format") == "onnx":
        info["package_network_format"] = "onnx"
    return ModelChoice({n: unpacked.model_dirs[n] for n in names}, unpacked.postprocessing if whole else None, note,
                       info, {n: unpacked.folds.get(n, []) for n in names}, unpacked.checkpoint)


def load_ensemble(model: str | Path, configuration: str | Sequence[str] | None = None,
                  folds: Sequence[str] | None = None, checkpoint: str = "final", device: str = "auto",
                  options: InferenceOptions | None = None, postprocess: bool = True) -> ModelEnsemble:
    """A ModelEnsemble ready to predict: every member's folds loaded on the device, post-processing attached."""
    from segkit.export.unpack import is_model_package
    from segkit.inference.backend_choice import backend_record, choose_backend
    from segkit.inference.model import load_model
    from segkit.inference.predictor import InferenceOptions, ModelEnsemble
    from segkit.interop.nnunet import cached_segkit_model, is_nnunet_model_folder

    if is_nnunet_model_folder(model):   # an nnU-Net v2 results folder: converted once into a cache
        model, configuration = cached_segkit_model(model, checkpoint), None
    if is_model_package(model):
        choice = _package_choice(Path(model), configuration, checkpoint)
    else:
        choice = chosen_model(model, configuration)
    checkpoint = choice.checkpoint or checkpoint
    options = options or InferenceOptions()
    if choice.package.get("package_network_format") == "onnx" and options.backend == "torch":
        raise UserError("holds ONNX networks (export-model --format onnx): run it with --backend onnxruntime, "
                        "openvino or auto", model)
    backend, measurement = choose_backend(choice, options, device)
    members = [load_model(model_dir, name, list(folds) if folds else (choice.folds.get(name) or None), checkpoint,
                          device, backend, options.precision) for name, model_dir in choice.model_dirs.items()]
    decision = choice.postprocessing if postprocess else None
    names = [m.configuration for m in members]
    identity = {"model": str(Path(model).resolve()), **choice.package, "configuration": "+".join(names),
                "folds": list(members[0].folds) if len(members) == 1 else {m.configuration: list(m.folds)
                                                                           for m in members},
                "checkpoint": checkpoint, "postprocessing": decision,
                "backend": backend_record(members[0], options.backend, measurement)}
    if choice.note and postprocess:
        identity["postprocessing_note"] = choice.note
    previous = {m.configuration: f"{m.previous.configuration} folds {', '.join(m.previous.folds)}"
                for m in members if m.previous is not None}
    if previous:
        identity["previous_stages"] = previous
    return ModelEnsemble(members, options, decision, identity)
