"""A trained model folder (WORK/models/<config>): which folder and configuration a path names, its folds' checkpoints.

The one lookup every consumer uses: prediction (`segkit.inference.model.load_model`), packaging
(`segkit.models.package`), `plan --like` and `train --pretrained` (through `segkit.models.resolve`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from segkit.errors import UserError
from segkit.plans import configurations_of, read_plans
from segkit.workdir import (
    checkpoint_path,
    fold_dir,
    is_work_dir,
    plans_path,
    sibling_model_dir,
)
from segkit.workdir import model_dir as model_dir_of

CHECKPOINT_KINDS = ("final", "best", "latest")
DEFAULT_CONFIGURATION = "3d_fullres"
FOLD_DIR = re.compile(r"^fold_(?P<fold>\d+|all)$")


def resolve_model_dir(model: str | Path, configuration: str | None) -> tuple[Path, str]:
    """The configuration's model folder and name, given a model folder or a work dir (with models/)."""
    model = Path(model)
    if not model.is_dir():
        raise UserError("model folder not found", model)
    name: str | None
    if is_work_dir(model):   # a work dir: WORK/models/<config>
        name = configuration or DEFAULT_CONFIGURATION
        model = model_dir_of(model, name)
        if not model.is_dir():
            raise UserError(f"no trained configuration {name!r} here", model.parent)
    plans = read_plans(plans_path(model))
    known = sorted(configurations_of(plans))
    name = configuration or (model.name if model.name in known else (known[0] if len(known) == 1 else None))
    if name is None:
        raise UserError(f"cannot tell the configuration; pass -c (plans has: {', '.join(known)})", model)
    if name not in known:
        raise UserError(f"configuration {name!r} not in plans.json (has: {', '.join(known) or 'none'})", model)
    if name != model.name and model.name in known:
        # a model folder holds one configuration's weights; another -c would run that plan with these weights
        raise UserError(f"this model folder holds the {model.name} model, not {name}: drop -c {name}, or give "
                        f"-m {model.parent / name} (or the work dir) for {name}", model)
    return model, name


def find_folds(model_dir: Path, folds: Sequence[str] | None, checkpoint: str) -> list[tuple[str, Path]]:
    """(fold name, checkpoint path) for the requested folds, or every fold folder holding that checkpoint."""
    if checkpoint not in CHECKPOINT_KINDS:
        raise UserError(f"--checkpoint must be one of {', '.join(CHECKPOINT_KINDS)}, got {checkpoint!r}")
    filename = checkpoint_path(Path(), checkpoint).name
    if folds:
        wanted = [str(f) for f in folds]
        found = [(f, checkpoint_path(fold_dir(model_dir, f), checkpoint)) for f in wanted]
        for fold, path in found:
            if not path.is_file():
                raise UserError(f"fold {fold} has no {filename}", path.parent)
        return found
    found = []
    for path in sorted(model_dir.iterdir()):
        match = FOLD_DIR.match(path.name)
        if match and (path / filename).is_file():
            found.append((match["fold"], path / filename))
    if not found:
        raise UserError(f"no fold_*/{filename} found; train first or pass -f", model_dir)
    return found


def find_onnx_folds(model_dir: Path, folds: Sequence[str] | None) -> list[tuple[str, Path]]:
    """(fold name, network.onnx) of an ONNX model folder (export-model --format onnx); [] for a torch folder."""
    from segkit.models.onnx import NETWORK_FILE

    found = [(m["fold"], p / NETWORK_FILE) for p in sorted(model_dir.iterdir())
             if (m := FOLD_DIR.match(p.name)) and (p / NETWORK_FILE).is_file()]
    if not found or not folds:
        return found
    wanted = [str(f) for f in folds]
    missing = [f for f in wanted if f not in dict(found)]
    if missing:
        raise UserError(f"fold(s) {', '.join(missing)} have no {NETWORK_FILE}", model_dir)
    return [(f, dict(found)[f]) for f in wanted]


def previous_stage_dir(model_dir: Path, configuration: str, previous: str) -> Path:
    """The model folder of a cascade stage's previous stage, beside its own; a UserError when it is absent."""
    folder = sibling_model_dir(model_dir, previous)
    if not folder.is_dir():
        raise UserError(f"{configuration} is a cascade stage: its previous stage {previous} is needed beside it", folder)
    return folder
