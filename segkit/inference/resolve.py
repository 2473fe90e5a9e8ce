"""What `-m MODEL` names: the configuration(s) to run, their folders and the post-processing decided for them.

- a model package ``.zip`` (``segkit export-model``): its configurations (one, or find-best's
  ensemble of two) and the post-processing it carries;
- a work dir ``WORK`` (holding ``models/``): ``-c`` when given, else find-best's choice from
  ``WORK/find_best.json``, else ``3d_fullres``;
- a model folder ``WORK/models/<config>``: that configuration.

Post-processing follows the model it was decided for: find-best's ``best.members`` must equal
the configurations that run, otherwise none is applied (and the reason is kept as a note).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from segkit.errors import UserError
from segkit.inference.model import DEFAULT_CONFIGURATION, resolve_model_dir
from segkit.jsonio import read_json


@dataclass
class ModelChoice:
    """Configuration name -> model folder, the matching post-processing decision (or None) and why."""

    model_dirs: dict[str, Path]
    postprocessing: dict | None = None
    note: str | None = None
    package: dict = field(default_factory=dict)
    folds: dict[str, list[str]] = field(default_factory=dict)
    checkpoint: str | None = None


def _names(configuration: str | Sequence[str] | None) -> list[str] | None:
    """-c as a list of names (None when not given)."""
    if configuration is None or configuration == []:
        return None
    return [configuration] if isinstance(configuration, str) else [str(c) for c in configuration]


def _decision_for(path: Path | None, configurations: list[str], explicit: bool) -> tuple[dict | None, str | None]:
    """find_best.json's post-processing when it was decided for exactly these configurations."""
    from segkit.evaluation.postprocess import check_decision

    if path is None or not path.is_file():
        if explicit:
            raise UserError("post-processing decision not found", path)
        return None, None
    data = read_json(path, "find_best.json")
    members = (data.get("best") or {}).get("members") if isinstance(data, dict) else None
    if not isinstance(members, list):
        note = f"{path} does not say which model its post-processing was decided for (no best.members); none applied"
        if explicit:
            raise UserError("find_best.json has no best.members: cannot tell which model it was decided for", path)
        return None, note
    if sorted(map(str, members)) != sorted(configurations):
        note = (f"find-best chose {'+'.join(members)}; {'+'.join(configurations)} runs without its post-processing")
        if explicit:
            raise UserError(f"this decision was made for {'+'.join(members)}, not {'+'.join(configurations)}", path)
        return None, note
    return check_decision(data, path), None


def chosen_model(model: str | Path, configuration: str | Sequence[str] | None = None,
                 find_best: str | Path | None = None) -> ModelChoice:
    """The configurations a model folder or work dir stands for, with their folders and post-processing."""
    model = Path(model)
    if not model.is_dir():
        raise UserError("model folder not found", model)
    names = _names(configuration)
    if (model / "models").is_dir():   # a work dir
        default = model / "find_best.json"
        if names is None:
            best = read_json(default, "find_best.json") if default.is_file() else {}
            names = [str(n) for n in (best.get("best") or {}).get("members") or [DEFAULT_CONFIGURATION]]
        dirs = {}
        for name in names:
            dirs[name] = resolve_model_dir(model, name)[0]
        candidate = Path(find_best) if find_best is not None else default
    else:
        if names is not None and len(names) > 1:
            raise UserError("a model folder holds one configuration; give the work dir to run an ensemble", model)
        model_dir, name = resolve_model_dir(model, names[0] if names else None)
        dirs = {name: model_dir}
        # an extracted legacy package keeps find_best.json inside; a trained model's is in its work dir
        around = [model_dir / "find_best.json"]
        if model_dir.parent.name == "models":
            around.append(model_dir.parent.parent / "find_best.json")
        candidate = Path(find_best) if find_best is not None else next((p for p in around if p.is_file()), None)
    decision, note = _decision_for(candidate, list(dirs), find_best is not None)
    return ModelChoice(dirs, decision, note)


def _package_choice(package: Path, configuration: str | Sequence[str] | None, checkpoint: str) -> ModelChoice:
    """The verified, extracted package's configurations (all, or the -c subset) and its post-processing."""
    from segkit.export.package import sha256_of
    from segkit.export.unpack import unpack_model

    unpacked = unpack_model(package)
    names = _names(configuration) or unpacked.configurations
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
    return ModelChoice({n: unpacked.model_dirs[n] for n in names}, unpacked.postprocessing if whole else None, note,
                       info, {n: unpacked.folds.get(n, []) for n in names}, unpacked.checkpoint)


def load_ensemble(model: str | Path, configuration: str | Sequence[str] | None = None,
                  folds: Sequence[str] | None = None, checkpoint: str = "final", device: str = "auto",
                  options: "object | None" = None, postprocess: bool = True) -> "object":
    """A ModelEnsemble ready to predict: every member's folds loaded on the device, post-processing attached."""
    from segkit.export.unpack import is_model_package
    from segkit.inference.model import load_model
    from segkit.inference.predictor import InferenceOptions, ModelEnsemble

    if is_model_package(model):
        choice = _package_choice(Path(model), configuration, checkpoint)
    else:
        choice = chosen_model(model, configuration)
    checkpoint = choice.checkpoint or checkpoint
    members = [load_model(model_dir, name, list(folds) if folds else (choice.folds.get(name) or None), checkpoint,
                          device) for name, model_dir in choice.model_dirs.items()]
    decision = choice.postprocessing if postprocess else None
    names = [m.configuration for m in members]
    identity = {"model": str(Path(model).resolve()), **choice.package, "configuration": "+".join(names),
                "folds": list(members[0].folds) if len(members) == 1 else {m.configuration: list(m.folds)
                                                                           for m in members},
                "checkpoint": checkpoint, "postprocessing": decision}
    if choice.note and postprocess:
        identity["postprocessing_note"] = choice.note
    return ModelEnsemble(members, options or InferenceOptions(), decision, identity)
