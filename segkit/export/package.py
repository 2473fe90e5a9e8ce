"""Package a trained model as one zip: ``segkit export-model MODEL -o model.zip``.

Zip layout (member names are fixed; nothing else is allowed in the archive)::

    manifest.json                   format, segkit version, configuration, folds, checkpoint kind,
                                    sha256 + size of every other member
    plans.json, dataset.json
    fold_<k>/checkpoint_<kind>.pt   the chosen folds' weights (torch.save, weights_only-loadable)
    find_best.json                  post-processing decision, when the work dir has one

``segkit.export.unpack.unpack_model`` verifies and extracts such a package for prediction.
"""

from __future__ import annotations

import hashlib
import zipfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Sequence

from segkit import __version__
from segkit.errors import UserError
from segkit.jsonio import atomic_path

PACKAGE_FORMAT = "segkit-model-package-1"
MANIFEST = "manifest.json"
_CHUNK = 1 << 20


def sha256_of(path: Path) -> str:
    """SHA-256 hex digest of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def find_postprocessing(model_dir: Path, explicit: str | Path | None = None) -> Path | None:
    """The find_best.json to ship: the given one, else one in the model folder or its work dir."""
    if explicit is not None:
        path = Path(explicit)
        if not path.is_file():
            raise UserError("post-processing decision not found", path)
        return path
    for candidate in (model_dir / "find_best.json", model_dir.parent.parent / "find_best.json"):
        if candidate.is_file():
            return candidate
    return None


def _check_checkpoint(path: Path) -> None:
    """Refuse to package a checkpoint that does not load with weights_only=True."""
    from segkit.inference.model import read_checkpoint

    read_checkpoint(path)


def package_members(model: str | Path, configuration: str | None = None, folds: Sequence[str] | None = None,
                    checkpoint: str = "final", find_best: str | Path | None = None) -> tuple[dict[str, Path], dict]:
    """(member name -> source file, manifest fields) of the package for a model folder."""
    from segkit.inference.model import find_folds, resolve_model_dir

    model_dir, name = resolve_model_dir(model, configuration)
    members = {"plans.json": model_dir / "plans.json"}
    if (model_dir / "dataset.json").is_file():
        members["dataset.json"] = model_dir / "dataset.json"
    chosen = find_folds(model_dir, list(folds) if folds else None, checkpoint)
    for fold, path in chosen:
        _check_checkpoint(path)
        members[f"fold_{fold}/{path.name}"] = path
    decision = find_postprocessing(model_dir, find_best)
    if decision is not None:
        members["find_best.json"] = decision
    info = {"configuration": name, "folds": [fold for fold, _ in chosen], "checkpoint": checkpoint,
            "postprocessing": "find_best.json" if decision is not None else None}
    return members, info


def build_manifest(members: dict[str, Path], info: dict) -> dict:
    """The manifest: format, version, creation time, run info and each member's sha256 and size."""
    return {"format": PACKAGE_FORMAT, "segkit_version": __version__,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), **info,
            "files": {name: {"sha256": sha256_of(path), "bytes": path.stat().st_size}
                      for name, path in sorted(members.items())}}


def export_model(model: str | Path, output: str | Path, configuration: str | None = None,
                 folds: Sequence[str] | None = None, checkpoint: str = "final",
                 find_best: str | Path | None = None) -> tuple[Path, dict]:
    """Write the model package zip atomically; return its path and manifest."""
    import json

    output = Path(output)
    if output.suffix.lower() != ".zip":
        raise UserError("the model package must be a .zip file", output)
    members, info = package_members(model, configuration, folds, checkpoint, find_best)
    manifest = build_manifest(members, info)
    with atomic_path(output, suffix=".zip") as tmp:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            archive.writestr(MANIFEST, json.dumps(manifest, indent=2) + "\n")
            for name, path in sorted(members.items()):
                archive.write(path, name)
    return output, manifest
