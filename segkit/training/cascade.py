"""A cascade stage's training inputs: the previous stage's fold split and its cross-validation label maps.

nnU-Net's rule: `3d_cascade_fullres` trains on what `3d_lowres` predicted for each training case
while that case was held out, i.e. on the previous stage's cross-validation predictions of the
same fold split (`WORK/models/3d_lowres/fold_<k>/validation/<CASE><ending>`, written at the end
of each `3d_lowres` fold's training or by `segkit find-best --predict-missing`). The cascade
therefore uses the previous stage's splits.json, and every fold of the previous stage must have
predicted its validation cases before any cascade fold trains.

Every case keeps the label map beside its arrays (`Case.previous`): in training it is moved with
the labels by the spatial augmentation, then one-hot and perturbed (segkit.training.augmentation);
validation appends its one-hot channels to the data case by case (`Case.network_input`), as
prediction feeds them.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from segkit.errors import UserError
from segkit.io.image import read_label_map
from segkit.plans import Plans, previous_stage_classes
from segkit.preprocessing.previous_stage import previous_labels_into
from segkit.training.loader import Case
from segkit.training.splits import read_splits, write_splits
from segkit.workdir import model_dir, splits_path, validation_dir


def cv_label_maps(work_dir: Path, config: str, splits: list[dict], file_ending: str
                  ) -> tuple[dict[str, Path], dict[int, list[str]]]:
    """Case id -> the `<CASE><file_ending>` label map its fold predicted, and per fold the cases without one.

    A cascade stage trains on these: each case as the previous stage
    predicted it while the case was held out.
    """
    found: dict[str, Path] = {}
    missing: dict[int, list[str]] = {}
    for fold, split in enumerate(splits):
        folder = validation_dir(model_dir(work_dir, config), fold)
        for case in split["val"]:
            path = folder / f"{case}{file_ending}"
            if path.is_file() and (folder / f"{case}.npz").is_file():
                found[str(case)] = path
            else:
                missing.setdefault(fold, []).append(str(case))
    return found, missing


def cascade_splits(work: Path, configuration: str, previous: str, case_ids: list[str], write: bool) -> list[dict]:
    """The previous stage's splits.json, which the cascade must share (copied into its model dir when absent)."""
    source = splits_path(model_dir(work, previous))
    if not source.is_file():
        raise UserError(f"{configuration} trains on {previous}'s cross-validation predictions: train every fold of "
                        f"{previous} first (no splits.json yet)", model_dir(work, previous))
    splits = read_splits(source)
    unknown = sorted({c for s in splits for c in s["train"] + s["val"]} - set(case_ids))
    if unknown:
        raise UserError(f"{previous}'s splits name cases that are not preprocessed for {configuration}: "
                        f"{unknown[:5]}", source)
    own = splits_path(model_dir(work, configuration))
    if own.is_file() and read_splits(own) != splits:
        raise UserError(f"splits.json differs from {previous}'s: a cascade stage must use its previous stage's folds "
                        f"(delete it to copy {source})", own)
    if write and not own.is_file():
        write_splits(own, splits)
    return splits


def previous_label_maps(work: Path, configuration: str, previous: str, splits: list[dict], case_ids: list[str],
                        file_ending: str) -> dict[str, Path]:
    """Case id -> the previous stage's held-out label map for every case needed; UserError naming missing folds."""
    found, missing = cv_label_maps(work, previous, splits, file_ending)
    needed = {fold: cases for fold, cases in missing.items() if set(cases) & set(case_ids)}
    if needed:
        folds = ", ".join(str(f) for f in sorted(needed))
        count = sum(len(c) for c in needed.values())
        raise UserError(f"{configuration} needs {previous}'s cross-validation predictions, missing for fold(s) {folds} "
                        f"({count} case(s)): train those folds of {previous} (training writes them) or run "
                        f"`segkit find-best {work} --configs {previous} --predict-missing`", model_dir(work, previous))
    return {case: found[case] for case in case_ids}


def with_previous(case: Case, label_map: Path, plans: Plans) -> Case:
    """The case with the previous stage's labels on its grid and the classes of their one-hot channels."""
    labels = read_label_map(label_map).array
    try:
        previous = previous_labels_into(labels, case.properties)
    except ValueError as err:
        raise UserError(f"does not fit preprocessed case {case.case_id} ({err})", label_map) from None
    return dataclasses.replace(case, previous=previous, previous_classes=previous_stage_classes(plans))
