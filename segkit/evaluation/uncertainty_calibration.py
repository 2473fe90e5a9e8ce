"""Calibrate the review threshold of the uncertainty score on a model's own cross-validation predictions.

For every cross-validation case (each predicted by the fold that did not train on it, as
`segkit find-best` reads them: `WORK/models/<config>/fold_<k>/validation/<CASE>.npz`) the case's
uncertainty score (`segkit.inference.uncertainty`: the mean over structures of 1 - the Dice the
model expects of itself, from the saved probabilities alone) is set against its real Dice (mean
over structures, the reference labels). A case is a *low-Dice* case when its Dice is below the
cross-validation median. The calibration reports how well the score ranks the cases (AUROC of
the score for "below the median Dice", Spearman's rank correlation of score and Dice, and the
same AUROC within each structure whose Dice varies, and their mean) and picks the threshold
that maximises F1 for flagging the low-Dice cases (ties: the higher threshold, fewer flags),
with that threshold's precision and recall.
The result is written as `models/<config>/uncertainty_calibration.json` (format owned by
`segkit.models.calibration`), which `segkit predict --uncertainty` uses to flag cases and
`segkit export-model` packages.

Conditions to keep in mind when reading the numbers: the cross-validation predictions come
from one fold each (with test-time mirroring, as find-best's), while deployment usually
averages several folds, which makes the probabilities, and so the score, somewhat more
confident; the calibration says how many cases it saw.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from segkit.errors import UserError
from segkit.evaluation.cv_predictions import cv_files_from_dir, cv_files_from_splits, label_conversion, output_classes
from segkit.evaluation.cv_predictions import probabilities_to_labels as cv_labels
from segkit.evaluation.evaluate import read_label_map
from segkit.evaluation.find_best import reference_root, resolve_reference
from segkit.evaluation.metrics import dice_only
from segkit.inference.probabilities import load_cv_probabilities
from segkit.inference.uncertainty import SCORE_NAME, case_score, structure_scores
from segkit.models.calibration import write_calibration
from segkit.models.find_best import read_find_best
from segkit.models.postprocessing import apply_postprocessing
from segkit.plans import ignore_label_of, read_plans
from segkit.workdir import find_best_path, model_dir, plans_path, uncertainty_calibration_path

MIN_CASES = 4


def auroc(scores: Sequence[float], positives: Sequence[bool]) -> float | None:
    """Area under the ROC curve of scores for the positive cases (ties count half); None without both classes."""
    scores_arr, positive = np.asarray(scores, dtype=np.float64), np.asarray(positives, dtype=bool)
    pos, neg = scores_arr[positive], scores_arr[~positive]
    if pos.size == 0 or neg.size == 0:
        return None
    greater = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(greater / (pos.size * neg.size))


def spearman(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Spearman's rank correlation (average ranks for ties); None when either side is constant."""
    def ranks(values: Sequence[float]) -> np.ndarray:
        array = np.asarray(values, dtype=np.float64)
        order = array.argsort(kind="stable")
        result = np.empty(len(array))
        result[order] = np.arange(len(array))
        for value in np.unique(array):   # average rank of tied values
            tied = array == value
            result[tied] = result[tied].mean()
        return result

    x, y = ranks(a), ranks(b)
    if x.std() == 0 or y.std() == 0:
        return None
    return float(np.corrcoef(x, y)[0, 1])


def best_threshold(scores: Sequence[float], positives: Sequence[bool]) -> dict:
    """The threshold (flag when score >= it) with the highest F1, its precision, recall and flagged fraction."""
    scores_arr, positive = np.asarray(scores, dtype=np.float64), np.asarray(positives, dtype=bool)
    best: dict | None = None
    for threshold in sorted(set(scores_arr.tolist()), reverse=True):   # high to low: ties keep the higher one
        flagged = scores_arr >= threshold
        hits = int((flagged & positive).sum())
        precision = hits / int(flagged.sum())
        recall = hits / max(int(positive.sum()), 1)
        f1 = 0.0 if hits == 0 else 2 * precision * recall / (precision + recall)
        if best is None or f1 > best["f1"] + 1e-12:
            best = {"threshold": float(threshold), "precision": precision, "recall": recall, "f1": f1,
                    "flagged_fraction": float(flagged.mean())}
    assert best is not None                                   # at least one score
    return best


def _structure_dice(labels: np.ndarray, ref: np.ndarray, classes: dict[str, list[int]],
                    ignore_label: int | None) -> dict[str, float]:
    """Dice per structure with the empty-case rule, on annotated voxels only for a sparse reference."""
    annotated = ref != ignore_label if ignore_label is not None and (ref == ignore_label).any() else None
    dice = {}
    for name, values in classes.items():
        pred, truth = np.isin(labels, values), np.isin(ref, values)
        if annotated is not None:
            pred, truth = pred & annotated, truth & annotated
        dice[name] = dice_only(pred, truth)
    return dice


def _decision_for(work_dir: Path, config: str) -> dict | None:
    """find-best's post-processing when it was decided for exactly this configuration (what predict applies)."""
    path = find_best_path(work_dir)
    if not path.is_file():
        return None
    chosen = read_find_best(path)
    return chosen.get("postprocessing") if chosen.get("best", {}).get("members") == [config] else None


def case_records(work_dir: Path, config: str, reference: str | Path | None = None,
                 cv_dir: Path | None = None) -> list[dict]:
    """Per cross-validation case: its Dice per structure and mean, and the uncertainty score of its probabilities."""
    plans = read_plans(plans_path(model_dir(work_dir, config)))
    num_outputs = plans.num_outputs
    files = cv_files_from_dir(cv_dir) if cv_dir is not None else cv_files_from_splits(work_dir, config)
    references = resolve_reference(reference_root(reference, work_dir))
    absent = sorted(set(files) - set(references))
    if absent:
        raise UserError(f"no reference label map for CV case(s) {', '.join(absent[:5])}", work_dir)
    classes, conversion = output_classes(plans), label_conversion(plans)
    decision = _decision_for(work_dir, config)
    records = []
    for case, path in sorted(files.items()):
        ref = read_label_map(references[case])
        probabilities = load_cv_probabilities(path, num_outputs, ref.array.shape, ref.geometry)
        labels = cv_labels(probabilities, conversion)
        if decision:
            labels = apply_postprocessing(labels, decision)
        structures = structure_scores(probabilities, labels, plans)
        dice = _structure_dice(labels, ref.array, classes, ignore_label_of(plans))
        records.append({"case": case, "dice": round(float(np.mean(list(dice.values()))), 5),
                        "score": case_score(structures),
                        "structures": {name: {"dice": round(dice[name], 5), "score": structures[name]["score"]}
                                       for name in classes if name in structures}})
    return records


def structure_aurocs(records: list[dict]) -> dict[str, float]:
    """Per structure: AUROC of its score for its Dice below its own cross-validation median (where both occur)."""
    result = {}
    names = sorted({name for record in records for name in record["structures"]})
    for name in names:
        pairs = [r["structures"][name] for r in records if name in r["structures"]]
        median = float(np.median([p["dice"] for p in pairs]))
        value = auroc([p["score"] for p in pairs], [p["dice"] < median for p in pairs])
        if value is not None:
            result[name] = value
    return result


def calibrate(records: list[dict], config: str) -> dict:
    """The calibration (threshold, quality, per-case records) from case records."""
    if len(records) < MIN_CASES:
        raise UserError(f"calibrating needs at least {MIN_CASES} cross-validation cases, found {len(records)}")
    dice = [r["dice"] for r in records]
    scores = [r["score"] for r in records]
    median = float(np.median(dice))
    positives = [d < median for d in dice]
    if not any(positives):
        raise UserError("every cross-validation case has the same Dice: nothing to rank")
    threshold = best_threshold(scores, positives)
    correlation = spearman(scores, dice)
    per_structure = structure_aurocs(records)
    quality = {"auroc": auroc(scores, positives), "spearman_score_vs_dice": correlation,
               "structure_auroc": float(np.mean(list(per_structure.values()))) if per_structure else None,
               "structure_aurocs": per_structure,
               **{k: threshold[k] for k in ("precision", "recall", "f1", "flagged_fraction")}}
    return {"configuration": config, "score": SCORE_NAME,
            "target": f"case mean Dice below the cross-validation median ({median:.4f})",
            "median_dice": median, "threshold": threshold["threshold"],
            "rule": "the threshold with the highest F1 for flagging below-median cases (flag: score >= threshold)",
            "quality": quality, "num_cases": len(records), "num_low_dice_cases": int(sum(positives)),
            "source": "cross-validation predictions: one fold per case, test-time mirroring as predicted",
            "cases": records}


def calibrate_uncertainty(work_dir: str | Path, config: str, reference: str | Path | None = None,
                          cv_dir: str | Path | None = None, output: str | Path | None = None) -> tuple[dict, Path]:
    """Calibrate a configuration's review threshold and write uncertainty_calibration.json beside its model."""
    work_dir = Path(work_dir)
    if not model_dir(work_dir, config).is_dir():
        raise UserError(f"no trained configuration {config!r}", model_dir(work_dir, config))
    records = case_records(work_dir, config, reference, Path(cv_dir) if cv_dir else None)
    calibration = calibrate(records, config)
    path = Path(output) if output else uncertainty_calibration_path(model_dir(work_dir, config))
    return calibration, write_calibration(path, calibration)
