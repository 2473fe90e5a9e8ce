"""Produce missing cross-validation predictions: each fold's model predicts its own validation cases.

Writes `WORK/models/<config>/fold_<k>/validation/<CASE>.npz` (+ label map) with the
predictor of segkit.inference (probabilities saved), which is where find-best looks.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from segkit.console import say
from segkit.errors import UserError
from segkit.evaluation.cv_predictions import cv_splits, cv_validation_dir
from segkit.plans import labels_of
from segkit.workdir import model_dir


def missing_validation_cases(work_dir: Path, config: str) -> dict[int, list[str]]:
    """Per fold, the validation cases whose probabilities are not there yet."""
    missing = {}
    for fold, split in enumerate(cv_splits(work_dir, config)):
        folder = cv_validation_dir(work_dir, config, fold)
        cases = [str(c) for c in split["val"] if not (folder / f"{c}.npz").is_file()]
        if cases:
            missing[fold] = cases
    return missing


def predict_missing_cv(work_dir: str | Path, config: str, dataset: str | Path, checkpoint: str = "final",
                       device: str = "auto", tta: bool = True) -> int:
    """Predict every fold's missing validation cases from DATASET/imagesTr; returns how many were predicted."""
    work_dir = Path(work_dir)
    missing = missing_validation_cases(work_dir, config)
    total, done = sum(len(c) for c in missing.values()), 0
    if total:
        say(f"find-best: {config}: {total} cross-validation case(s) to predict in {len(missing)} fold(s)")
    for fold, case_ids in missing.items():
        started = time.monotonic()
        predict_fold_validation(work_dir, config, dataset, fold, case_ids, checkpoint, device, tta)
        done += len(case_ids)
        # minutes of silence looked like a hang (#24): one line per fold, with the pace
        say(f"find-best: {config} fold {fold}: predicted {len(case_ids)} case(s) in {time.monotonic() - started:.0f} s "
            f"({done}/{total})")
    return total


def predict_fold_validation(work_dir: str | Path, config: str, dataset: str | Path, fold: int,
                            case_ids: list[str] | None = None, checkpoint: str = "final", device: str = "auto",
                            tta: bool = True) -> int:
    """Fold k's model predicts its validation cases (all of them, replacing the folder, when case_ids is None).

    What `segkit train` runs at the end of a fold (so find-best needs no second pass) and
    `find-best --predict-missing` runs for absent cases: the same model, options and writer.
    """
    from segkit.batch.cases import InputSpec, discover_cases
    from segkit.batch.outputs import OutputRequest
    from segkit.batch.pipeline import RunOptions, predict_cases
    from segkit.inference.model import load_model
    from segkit.inference.predictor import InferenceOptions, ModelEnsemble

    work_dir = Path(work_dir)
    folder = cv_validation_dir(work_dir, config, fold)
    if case_ids is None:
        case_ids = [str(c) for c in cv_splits(work_dir, config)[fold]["val"]]
        shutil.rmtree(folder, ignore_errors=True)   # a retrained fold's old predictions are stale
    images = Path(dataset) / "imagesTr"
    if not images.is_dir():
        raise UserError("dataset has no imagesTr folder to predict the validation cases from", dataset)
    by_id = {case.case_id: case for case in discover_cases(images) if case.kind == "files"}
    absent = [c for c in case_ids if c not in by_id]
    if absent:
        raise UserError(f"validation case(s) {', '.join(absent[:5])} of fold {fold} have no images", images)
    model = load_model(model_dir(work_dir, config), config, [str(fold)], checkpoint, device)
    engine = ModelEnsemble([model], InferenceOptions(tta=tta, save_probabilities=True))
    request = OutputRequest(folder, labels_of(model.plans), {}, probabilities=True, provenance=False)
    request.output_dir.mkdir(parents=True, exist_ok=True)
    # the validation folder holds only what find-best reads: no report, and any failure stops (exit 2)
    predict_cases(engine, [by_id[c] for c in case_ids], InputSpec(model.num_channels), request,
                  RunOptions(fail_fast=True, write_report=False, show_progress=False), images)
    return len(case_ids)


def fold_validation_dice(work_dir: str | Path, config: str, dataset: str | Path, fold: int) -> tuple[float, int]:
    """Mean whole-case Dice (over cases, then classes) of a fold's validation label maps against labelsTr; and count."""
    import numpy as np

    from segkit.evaluation.cv_predictions import output_classes
    from segkit.evaluation.evaluate import label_files, read_label_map
    from segkit.evaluation.metrics import dice_only
    from segkit.plans import ignore_label_of, read_plans
    from segkit.workdir import plans_path

    work_dir = Path(work_dir)
    plans = read_plans(plans_path(model_dir(work_dir, config)))
    classes, ignore = output_classes(plans), ignore_label_of(plans)
    predictions = label_files(cv_validation_dir(work_dir, config, fold))
    references = label_files(Path(dataset) / "labelsTr")
    per_case = []
    for case, path in predictions.items():
        if case not in references:
            continue
        pred, ref = read_label_map(path).array, read_label_map(references[case]).array
        annotated = ref != ignore if ignore is not None else np.ones(ref.shape, bool)
        per_case.append(np.mean([dice_only(np.isin(pred, v) & annotated, np.isin(ref, v) & annotated)
                                 for v in classes.values()]))
    if not per_case:
        raise UserError("no validation prediction with a reference label map", cv_validation_dir(work_dir, config, fold))
    return float(np.mean(per_case)), len(per_case)
