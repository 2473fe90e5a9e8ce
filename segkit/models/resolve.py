"""The one resolver from "a source" to a model: which configurations it stands for and where their folders are.

A source is
- a model package ``.zip`` (``segkit export-model``): verified and extracted; its configurations
  (one, or find-best's ensemble of two) and the post-processing it carries;
- an nnU-Net v2 model folder: converted once into a segkit model folder in the cache;
- a work dir or a model folder (`segkit.models.choice.chosen_model`).

Used by prediction (``-m``, `segkit.inference.resolve`), ``plan --like`` (`segkit.planning.like`)
and ``train --pretrained`` (`segkit.training.pretrained`).

Post-processing follows the model it was decided for: find-best's ``best.members`` must equal
the configurations that run, otherwise none is applied (and the reason is kept as a note).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

from segkit.errors import UserError
from segkit.models.choice import ModelChoice, chosen_model, configuration_names
from segkit.models.nnunet import cached_segkit_model, is_nnunet_model_folder
from segkit.models.package import sha256_of
from segkit.models.unpack import is_model_package, unpack_model


def resolve_model(source: str | Path, configuration: str | Sequence[str] | None = None, checkpoint: str = "final",
                  decide: bool = True) -> ModelChoice:
    """The configurations a source stands for, their model folders, and (when decide) their post-processing."""
    if is_nnunet_model_folder(source):   # an nnU-Net v2 results folder: converted once into a cache
        source, configuration = cached_segkit_model(source, checkpoint), None
    if is_model_package(source):
        return dataclasses.replace(package_choice(Path(source), configuration, checkpoint), source=Path(source))
    return chosen_model(source, configuration, decide=decide)


def package_choice(package: Path, configuration: str | Sequence[str] | None, checkpoint: str) -> ModelChoice:
    """The verified, extracted package's configurations (all, or the -c subset) and its post-processing."""

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
