"""Which configuration(s) a trained model folder or work dir stands for, and the post-processing decided for them.

Shared by prediction (`segkit.inference.resolve`) and packaging (`segkit.models.package`):

- a work dir ``WORK`` (holding ``models/``): ``-c`` when given, else find-best's choice from
  ``WORK/find_best.json``, else ``3d_fullres``;
- a model folder ``WORK/models/<config>``: that configuration.

Post-processing follows the model it was decided for: find-best's ``best.members`` must equal
the configurations that run, otherwise none is applied (and the reason is kept as a note).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from segkit.errors import UserError
from segkit.models.folder import DEFAULT_CONFIGURATION, resolve_model_dir
from segkit.workdir import find_best_path, is_work_dir, models_root


@dataclass
class ModelChoice:
    """Configuration name -> model folder, the matching post-processing decision (or None) and why."""

    model_dirs: dict[str, Path]
    postprocessing: dict | None = None
    note: str | None = None
    package: dict = field(default_factory=dict)
    folds: dict[str, list[str]] = field(default_factory=dict)
    checkpoint: str | None = None
    source: Path | None = None   # the folder or package the choice was read from (an nnU-Net folder's conversion)


def configuration_names(configuration: str | Sequence[str] | None) -> list[str] | None:
    """-c as a list of names (None when not given)."""
    if configuration is None or configuration == []:
        return None
    return [configuration] if isinstance(configuration, str) else [str(c) for c in configuration]


def _decision_for(path: Path | None, configurations: list[str], explicit: bool) -> tuple[dict | None, str | None]:
    """find_best.json's post-processing when it was decided for exactly these configurations."""
    from segkit.models.find_best import read_find_best
    from segkit.models.postprocessing import check_decision

    if path is None or not path.is_file():
        if explicit:
            raise UserError("post-processing decision not found", path)
        return None, None
    data = read_find_best(path)
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
                 find_best: str | Path | None = None, decide: bool = True) -> ModelChoice:
    """The configurations a model folder or work dir stands for, with their folders and post-processing (when decide)."""
    from segkit.models.find_best import read_find_best

    model = Path(model)
    if not model.is_dir():
        raise UserError("model folder not found", model)
    names = configuration_names(configuration)
    if is_work_dir(model):
        default = find_best_path(model)
        if names is None:
            best = read_find_best(default) if default.is_file() else {}
            names = [str(n) for n in (best.get("best") or {}).get("members") or [DEFAULT_CONFIGURATION]]
        dirs = {}
        for name in names:
            dirs[name] = resolve_model_dir(model, name)[0]
        candidate: Path | None = Path(find_best) if find_best is not None else default
    else:
        if names is not None and len(names) > 1:
            raise UserError("a model folder holds one configuration; give the work dir to run an ensemble", model)
        model_dir, name = resolve_model_dir(model, names[0] if names else None)
        dirs = {name: model_dir}
        # an extracted legacy package keeps find_best.json inside; a trained model's is in its work dir
        around = [find_best_path(model_dir)]
        if model_dir.parent == models_root(model_dir.parent.parent):
            around.append(find_best_path(model_dir.parent.parent))
        candidate = Path(find_best) if find_best is not None else next((p for p in around if p.is_file()), None)
    if not decide:
        return ModelChoice(dirs, source=model)
    decision, note = _decision_for(candidate, list(dirs), find_best is not None)
    return ModelChoice(dirs, decision, note, source=model)
