"""What `-m MODEL` names, loaded: the configuration(s) `segkit.models.resolve.resolve_model` finds, as a ready `ModelEnsemble`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from segkit.errors import UserError
from segkit.models.calibration import read_calibration
from segkit.models.resolve import resolve_model
from segkit.workdir import uncertainty_calibration_path

if TYPE_CHECKING:
    from segkit.inference.predictor import InferenceOptions, ModelEnsemble


def load_ensemble(model: str | Path, configuration: str | Sequence[str] | None = None,
                  folds: Sequence[str] | None = None, checkpoint: str = "final", device: str = "auto",
                  options: InferenceOptions | None = None, postprocess: bool = True) -> ModelEnsemble:
    """A ModelEnsemble ready to predict: every member's folds loaded on the device, post-processing attached."""
    from segkit.inference.backend_choice import backend_record, choose_backend
    from segkit.inference.model import load_model
    from segkit.inference.predictor import InferenceOptions, ModelEnsemble

    choice = resolve_model(model, configuration, checkpoint)
    model = choice.source or model
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
    return ModelEnsemble(members, options, decision, identity, model_calibration(members))


def model_calibration(members: list) -> dict | None:
    """The review threshold calibrated for this model: a single configuration's uncertainty_calibration.json.

    An ensemble of configurations has no calibration of its own (each file describes one
    configuration's cross-validation predictions), so its cases are scored but not flagged.
    """
    if len(members) != 1:
        return None
    return read_calibration(uncertainty_calibration_path(members[0].model_dir))
