"""Locate and read cross-validation predictions (probabilities) and turn probabilities into label maps.

Contract (docs/architecture.md, "Cross-validation predictions"): each configuration's CV
predictions are `<CASE>.npz` files as `segkit predict --save-probabilities` writes them
(segkit.inference.probabilities): a float array `probabilities` of shape (num_outputs, z, y, x)
on the case's original voxel grid (softmax: background first; sigmoid: one channel per
region), usually beside the `<CASE><file_ending>` label map. The `metadata` entry is not
needed here: the label conversion comes from WORK/plans.json.
By default they live in `WORK/models/<config>/fold_<k>/validation/` for the validation
cases of fold k in `models/<config>/splits.json`; `--cv-dir CONFIG=DIR` names a folder that
holds all of a configuration's CV cases instead.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from segkit.errors import UserError
from segkit.plans import (
    LabelCoding,
    Plans,
    configurations_of,
    output_label_values,
)
from segkit.training.splits import read_splits
from segkit.workdir import model_dir, splits_path, validation_dir


def cv_validation_dir(work_dir: Path, config: str, fold: int) -> Path:
    """Where fold k's validation predictions of a configuration are expected."""
    return validation_dir(model_dir(work_dir, config), fold)


def cv_splits(work_dir: Path, config: str) -> list[dict]:
    """models/<config>/splits.json, read by its owner (segkit.training.splits)."""
    return read_splits(splits_path(model_dir(work_dir, config)))


def cv_files_from_splits(work_dir: Path, config: str) -> dict[str, Path]:
    """Case id -> npz of every fold's validation cases; UserError naming what is missing."""
    files: dict[str, Path] = {}
    missing: list[Path] = []
    for fold, split in enumerate(cv_splits(work_dir, config)):
        folder = cv_validation_dir(work_dir, config, fold)
        for case in split["val"]:
            path = folder / f"{case}.npz"
            if path.is_file():
                files[str(case)] = path
            else:
                missing.append(path)
    if missing:
        raise UserError(f"{len(missing)} cross-validation probability file(s) missing, e.g. {missing[0]} "
                        "(predict each fold's validation cases with --save-probabilities, or pass --cv-dir)",
                        model_dir(work_dir, config))
    return files


def cv_status(work_dir: Path, plans: Plans) -> dict[str, str]:
    """Each planned configuration with a model folder: "complete" (every fold's CV probabilities are there) or why not.

    `find-best` without --configs compares the complete ones, so a cascade stage joins the
    comparison (alone and in pairs) as soon as its cross-validation predictions exist.
    """
    status = {}
    for config in configurations_of(plans):
        if not splits_path(model_dir(work_dir, config)).is_file():
            continue
        missing = sum(1 for fold, split in enumerate(cv_splits(work_dir, config)) for case in split["val"]
                      if not (cv_validation_dir(work_dir, config, fold) / f"{case}.npz").is_file())
        status[config] = "complete" if missing == 0 else f"{missing} CV prediction(s) missing"
    return status


def cv_files_from_dir(folder: Path) -> dict[str, Path]:
    """Case id -> npz of every <CASE>.npz in a folder."""
    if not folder.is_dir():
        raise UserError("cross-validation prediction folder not found", folder)
    files = {p.name[: -len(".npz")]: p for p in sorted(folder.glob("*.npz")) if not p.name.startswith(".")}
    if not files:
        raise UserError("no <CASE>.npz probability files found", folder)
    return files


def parse_cv_dirs(items: list[str] | None) -> dict[str, Path]:
    """Parse `--cv-dir CONFIG=DIR` items."""
    out = {}
    for item in items or []:
        config, sep, folder = item.partition("=")
        if not sep or not config or not folder:
            raise UserError(f"--cv-dir: expected CONFIG=DIR, got {item!r}")
        out[config] = Path(folder)
    return out


def label_conversion(plans: Plans) -> LabelCoding:
    """The plan's label coding (with `num_outputs`, the expected output channels), checked for label conversion."""
    coding = plans.label_coding
    if coding.label_mode == "sigmoid" and len(coding.regions_class_order or []) != len(coding.outputs):
        raise UserError("sigmoid plans need 'regions_class_order' with one value per region")
    return coding


def probabilities_to_labels(probs: np.ndarray, conversion: LabelCoding) -> np.ndarray:
    """Softmax: argmax (channel 0 = background); sigmoid: regions > 0.5 painted in regions_class_order."""
    from segkit.inference.regions import labels_for_plans

    return labels_for_plans(probs, conversion)


def output_classes(plans: Plans) -> dict[str, list[int]]:
    """Classes or regions scored in model selection: plans 'outputs' (name -> label values)."""
    outputs = output_label_values(plans)
    if not outputs:
        raise UserError("plans.json has no 'outputs'")
    return outputs
