"""Package a trained model as one zip: ``segkit export-model MODEL -o model.zip``.

What is packaged: find-best's choice when MODEL is a work dir with ``find_best.json`` (one
configuration, or the ensemble of two), else the configuration named by MODEL / ``-c``. The
post-processing decision travels only with the model it was decided for: find-best's
``best.members`` must equal the packaged configurations, otherwise the package carries none.

Zip layout (member names are fixed; nothing else is allowed in the archive)::

    manifest.json                          format, segkit version, configurations, folds per
                                           configuration, checkpoint kind, post-processing decision,
                                           sha256 + size of every other member
    <config>/plans.json, <config>/dataset.json, <config>/pruning.json (UNet++, when chosen),
    <config>/uncertainty_calibration.json (the review threshold, when calibrated)
    <config>/fold_<k>/checkpoint_<kind>.pt the chosen folds' weights (torch.save, weights_only-loadable), or
    <config>/fold_<k>/network.onnx         with --format onnx: each fold's network as ONNX (segkit.models.onnx;
                                           manifest "network_format": "onnx"), runnable without torch
    <previous>/...                         a cascade stage's previous stage (plans, dataset.json, the same
                                           folds' checkpoints; manifest "previous_stages"): it runs first
    postprocessing.json                    find-best's decision for this model, when it has one

``segkit.models.unpack.unpack_model`` verifies and extracts such a package for prediction
(it also reads the one-configuration layout of ``segkit-model-package-1``).

This module owns the manifest format: its name and versions, the required keys, the writer
(`build_manifest`) and the reader (`read_manifest`, `read_cached_manifest`); unpack.py uses them.
"""

from __future__ import annotations

import hashlib
import json
import re
import zipfile
import zlib
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

from segkit.errors import UserError
from segkit.jsonio import atomic_path
from segkit.plans import read_plans
from segkit.version import __version__
from segkit.workdir import model_dataset_path, plans_path, pruning_path, uncertainty_calibration_path

PACKAGE_FORMAT = "segkit-model-package-2"
LEGACY_PACKAGE_FORMAT = "segkit-model-package-1"
MANIFEST = "manifest.json"
POSTPROCESSING_MEMBER = "postprocessing.json"
NETWORK_FORMATS = ("torch", "onnx")
MANIFEST_REQUIRED_KEYS = ("format", "files")   # plus "configurations" (format 2) or "configuration" (format 1)
SAFE_MEMBER_NAME = re.compile(r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$")
_CHUNK = 1 << 20


def sha256_of(path: Path) -> str:
    """SHA-256 hex digest of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _check_checkpoint(path: Path) -> None:
    """Refuse to package a checkpoint that does not load with weights_only=True."""
    from segkit.models.checkpoint import load_checkpoint

    load_checkpoint(path)


def package_members(model: str | Path, configuration: str | Sequence[str] | None = None,
                    folds: Sequence[str] | None = None, checkpoint: str = "final",
                    find_best: str | Path | None = None,
                    network_format: str = "torch") -> tuple[dict[str, Path | bytes], dict]:
    """(member name -> source file or bytes, manifest fields) of the package for a model."""
    from segkit.models.choice import chosen_model
    from segkit.models.folder import previous_stage_dir

    choice = chosen_model(model, configuration, find_best)
    members: dict[str, Path | bytes] = {}
    chosen_folds = {}
    previous_stages = {}
    for name, model_dir in choice.model_dirs.items():
        found = _add_configuration(members, name, model_dir, list(folds) if folds else None, checkpoint,
                                   network_format)
        chosen_folds[name] = [fold for fold, _ in found]
        # a cascade stage travels with its previous stage (the same folds), which it runs first on every case
        stage, stage_dir = name, model_dir
        while (previous := read_plans(plans_path(stage_dir)).configuration(stage).previous_stage) is not None:
            stage_dir = previous_stage_dir(stage_dir, stage, previous)
            _add_configuration(members, previous, stage_dir, chosen_folds[name], checkpoint, network_format)
            previous_stages[stage] = {"configuration": previous, "folds": chosen_folds[name]}
            stage = previous
    if choice.postprocessing is not None:
        members[POSTPROCESSING_MEMBER] = (json.dumps({"members": list(choice.model_dirs),
                                                      "postprocessing": choice.postprocessing}, indent=2)
                                          + "\n").encode()
    info = {"configurations": list(choice.model_dirs), "folds": chosen_folds, "checkpoint": checkpoint,
            "postprocessing": choice.postprocessing, "postprocessing_note": choice.note}
    if previous_stages:
        info["previous_stages"] = previous_stages
    if network_format == "onnx":
        from segkit.models.onnx import INPUT_NAME, ONNX_FORMAT, OPSET, OUTPUT_NAME

        info["network_format"] = "onnx"
        info["onnx"] = {"format": ONNX_FORMAT, "opset": OPSET, "input": INPUT_NAME, "output": OUTPUT_NAME}
    return members, info


def _add_configuration(members: dict[str, Path | bytes], name: str, model_dir: Path, folds: list[str] | None,
                       checkpoint: str, network_format: str = "torch") -> list[tuple[str, Path]]:
    """Add one configuration's plans, dataset.json, pruning.json and fold networks to the members; return the folds found."""
    from segkit.models.folder import find_folds

    members[f"{name}/plans.json"] = plans_path(model_dir)
    if model_dataset_path(model_dir).is_file():
        members[f"{name}/dataset.json"] = model_dataset_path(model_dir)
    if pruning_path(model_dir).is_file():
        members[f"{name}/pruning.json"] = pruning_path(model_dir)
    if uncertainty_calibration_path(model_dir).is_file():   # the review threshold travels with the model
        members[f"{name}/uncertainty_calibration.json"] = uncertainty_calibration_path(model_dir)
    found = find_folds(model_dir, folds, checkpoint)
    for fold, path in found:
        if network_format == "onnx":
            from segkit.models.onnx import NETWORK_FILE, export_checkpoint

            plans = read_plans(plans_path(model_dir))
            members[f"{name}/fold_{fold}/{NETWORK_FILE}"] = export_checkpoint(path, model_dir, plans, name)
        else:
            _check_checkpoint(path)
            members[f"{name}/fold_{fold}/{path.name}"] = path
    return found


def _member_digest(source: Path | bytes) -> dict:
    """sha256 and size of a member given as a file or as bytes."""
    if isinstance(source, bytes):
        return {"sha256": hashlib.sha256(source).hexdigest(), "bytes": len(source)}
    return {"sha256": sha256_of(source), "bytes": source.stat().st_size}


def build_manifest(members: dict[str, Path | bytes], info: dict) -> dict:
    """The manifest: format, version, creation time, run info and each member's sha256 and size."""
    return {"format": PACKAGE_FORMAT, "segkit_version": __version__,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), **info,
            "files": {name: _member_digest(source) for name, source in sorted(members.items())}}


def export_model(model: str | Path, output: str | Path, configuration: str | Sequence[str] | None = None,
                 folds: Sequence[str] | None = None, checkpoint: str = "final",
                 find_best: str | Path | None = None, network_format: str = "torch") -> tuple[Path, dict]:
    """Write the model package zip atomically (networks as torch checkpoints or ONNX); return its path and manifest."""
    output = Path(output)
    if output.suffix.lower() != ".zip":
        raise UserError("the model package must be a .zip file", output)
    if output.is_dir():
        raise UserError("is a folder; give the package's file name, e.g. model.zip", output)
    if network_format not in NETWORK_FORMATS:
        raise UserError(f"--format must be one of {', '.join(NETWORK_FORMATS)}, got {network_format!r}")
    members, info = package_members(model, configuration, folds, checkpoint, find_best, network_format)
    manifest = build_manifest(members, info)
    with atomic_path(output, suffix=".zip") as tmp:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            archive.writestr(MANIFEST, json.dumps(manifest, indent=2) + "\n")
            for name, source in sorted(members.items()):
                if isinstance(source, bytes):
                    archive.writestr(name, source)
                else:
                    archive.write(source, name)
    return output, manifest


def check_member_name(name: str, package: Path) -> None:
    """Refuse a member name that could escape the extraction folder."""
    parts = name.split("/")
    if not SAFE_MEMBER_NAME.match(name) or any(part in (".", "..") for part in parts):
        raise UserError(f"refusing unsafe member name {name!r} in the model package", package)


def read_manifest(archive: zipfile.ZipFile, package: Path) -> dict:
    """The package's manifest, checked for format and shape (the single reader of manifest.json)."""
    try:
        manifest = json.loads(archive.read(MANIFEST))
    except KeyError:
        raise UserError("not a segkit model package (no manifest.json)", package) from None
    except (ValueError, zipfile.BadZipFile, OSError, EOFError, zlib.error) as err:
        raise UserError(f"manifest.json is unreadable ({err})", package) from None
    if not isinstance(manifest, dict) or manifest.get("format") not in (PACKAGE_FORMAT, LEGACY_PACKAGE_FORMAT):
        raise UserError(f"unsupported model package format (expected {PACKAGE_FORMAT!r})", package)
    files = manifest.get("files")
    if not isinstance(files, dict):
        raise UserError("manifest.json lacks 'files'", package)
    for name, entry in files.items():
        check_member_name(name, package)
        valid = isinstance(entry, dict) and isinstance(entry.get("sha256"), str) and isinstance(entry.get("bytes"), int)
        if not valid:
            raise UserError(f"manifest entry for {name!r} needs 'sha256' and 'bytes'", package)
    for configuration in manifest_configurations(manifest):
        check_member_name(configuration, package)
        plans = "plans.json" if manifest["format"] == LEGACY_PACKAGE_FORMAT else f"{configuration}/plans.json"
        if plans not in files:
            raise UserError(f"manifest.json lists no {plans}", package)
    if not manifest_configurations(manifest):
        raise UserError("manifest.json names no configuration", package)
    return manifest


def manifest_configurations(manifest: dict) -> list[str]:
    """The packaged configuration names (format 1: the single 'configuration')."""
    if manifest.get("format") == LEGACY_PACKAGE_FORMAT:
        return [str(manifest["configuration"])] if manifest.get("configuration") else []
    names = manifest.get("configurations")
    return [str(n) for n in names] if isinstance(names, list) else []


def read_cached_manifest(folder: Path) -> dict | None:
    """The manifest.json an earlier extraction left in folder, or None when absent or unreadable."""
    try:
        data = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
