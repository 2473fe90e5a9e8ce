"""Pick the best configuration or pair (ensemble) from cross-validation, then decide post-processing.

1. Every configuration alone and every pair (probabilities averaged) is scored by Dice per
   class on the pooled cross-validation cases; the best foreground-mean Dice wins (ties go to
   fewer members, then to the order given).
2. On the winner's CV label maps: keeping only the largest connected component of the whole
   foreground is kept when it raises the mean Dice and lowers no class's mean Dice; then, on
   top of that, the same test per class/region (each against the same baseline).
3. The combined decision is applied once more to report the final CV Dice.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np

from segkit.errors import UserError
from segkit.evaluation.cv_predictions import (
    cv_files_from_dir,
    cv_files_from_splits,
    cv_status,
    label_conversion,
    output_classes,
    probabilities_to_labels,
)
from segkit.evaluation.evaluate import label_files
from segkit.evaluation.metrics import dice_only
from segkit.inference.probabilities import load_cv_probabilities
from segkit.io.image import read_label_map
from segkit.io.parallel import parallel_map
from segkit.models.postprocessing import apply_postprocessing, keep_largest_component
from segkit.plans import LabelCoding, Plans, ignore_label_of, read_plans
from segkit.workdir import dataset_of_work_dir, model_dir, plans_path, validation_dir

FIND_BEST_FORMAT = "segkit-find-best-1"


def candidate_name(members: Sequence[str]) -> str:
    """'3d_fullres' or '2d+3d_fullres' for an ensemble."""
    return "+".join(members)


def reference_root(reference: str | Path | None, work_dir: Path) -> Path:
    """The --ref folder, or by default the raw dataset a default work dir belongs to (segkit.workdir)."""
    if reference is not None:
        return Path(reference)
    guess = dataset_of_work_dir(work_dir)
    if guess is None:
        raise UserError("cannot find the reference labels; pass --ref DATASET or --ref LABEL_FOLDER", work_dir)
    return guess


def resolve_reference(root: Path) -> dict[str, Path]:
    """Reference label maps by case: a raw dataset's labelsTr, or a folder of label maps."""
    folder = root / "labelsTr" if (root / "dataset.json").is_file() else root
    return label_files(folder)


def resolve_sources(work_dir: Path, configs: Sequence[str], cv_dirs: dict[str, Path]) -> dict[str, dict[str, Path]]:
    """Case -> npz per configuration, from --cv-dir folders or models/<config>/fold_k/validation/."""
    unknown = sorted(set(cv_dirs) - set(configs))
    if unknown:
        raise UserError(f"--cv-dir names configuration(s) {unknown} not in --configs {list(configs)}")
    sources = {c: cv_files_from_dir(cv_dirs[c]) if c in cv_dirs else cv_files_from_splits(work_dir, c) for c in configs}
    cases = set.intersection(*(set(files) for files in sources.values()))
    for config, files in sources.items():
        lacking = sorted(set().union(*(set(f) for f in sources.values())) - set(files))
        if lacking:
            raise UserError(f"configuration {config!r} has no CV prediction for {len(lacking)} case(s) the others have: "
                            f"{', '.join(lacking[:5])}", cv_dirs.get(config, model_dir(work_dir, config)))
    if not cases:
        raise UserError("no cross-validation cases found", work_dir)
    return sources


def _labels_of(members: Sequence[str], probs: dict[str, np.ndarray], conversion: LabelCoding) -> np.ndarray:
    """Label map of one candidate: the mean of its members' probabilities, converted."""
    mean = probs[members[0]] if len(members) == 1 else np.mean([probs[m] for m in members], axis=0)
    return probabilities_to_labels(mean, conversion)


def _class_dice(labels: np.ndarray, ref: np.ndarray, classes: dict[str, list[int]],
                ignore_label: int | None = None) -> dict[str, float]:
    """Dice per class or region (union of values) with the empty-case rule; only annotated voxels of a sparse ref."""
    if ignore_label is not None and (ref == ignore_label).any():
        annotated = ref != ignore_label
        return {name: dice_only(np.isin(labels, values) & annotated, np.isin(ref, values) & annotated)
                for name, values in classes.items()}
    return {name: dice_only(np.isin(labels, values), np.isin(ref, values)) for name, values in classes.items()}


def _load_case(job: dict, configs: Sequence[str]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Reference labels and the probabilities of the given configurations for one case."""
    ref = read_label_map(job["reference"])
    conversion = job["conversion"]
    probs = {c: load_cv_probabilities(job["files"][c], conversion.num_outputs, ref.array.shape, ref.geometry)
             for c in configs}
    return ref.array, probs


def _score_candidates(job: dict) -> dict:
    """Worker: per-class Dice of every candidate on one case (errors as values)."""
    try:
        ref, probs = _load_case(job, sorted({m for members in job["candidates"].values() for m in members}))
        classes, ignore = job["classes"], job.get("ignore_label")
        return {name: _class_dice(_labels_of(members, probs, job["conversion"]), ref, classes, ignore)
                for name, members in job["candidates"].items()}
    except UserError as err:
        return {"error": str(err)}


def _score_postprocessing(job: dict) -> dict:
    """Worker: per-class Dice of the winner without, with foreground LCC, and with each class LCC on both."""
    try:
        ref, probs = _load_case(job, job["members"])
        base = _labels_of(job["members"], probs, job["conversion"])
        classes, ignore = job["classes"], job.get("ignore_label")
        if job.get("decision") is not None:
            return {"final": _class_dice(apply_postprocessing(base, job["decision"]), ref, classes, ignore)}
        fg = keep_largest_component(base)
        out = {"none": _class_dice(base, ref, classes, ignore), "fg": _class_dice(fg, ref, classes, ignore)}
        for name, values in classes.items():
            out[f"none|{name}"] = _class_dice(keep_largest_component(base, values), ref, classes, ignore)
            out[f"fg|{name}"] = _class_dice(keep_largest_component(fg, values), ref, classes, ignore)
        return out
    except UserError as err:
        return {"error": str(err)}


def _run(worker, jobs: list[dict], num_workers: int, desc: str) -> list[dict]:
    """parallel_map over cases; the first per-case error becomes a UserError."""
    results = parallel_map(worker, jobs, num_workers, desc=desc)
    errors = [r["error"] for r in results if "error" in r]
    if errors:
        more = f" (and {len(errors) - 1} more case(s) failed)" if len(errors) > 1 else ""
        raise UserError(errors[0] + more)
    return results


def mean_dice(results: list[dict], key: str, classes: dict[str, list[int]]) -> dict[str, float]:
    """Mean over cases of each class's Dice for one result key."""
    return {name: float(np.mean([r[key][name] for r in results])) for name in classes}


def improves(after: dict[str, float], before: dict[str, float], eps: float = 1e-9) -> bool:
    """The rule for keeping a post-processing step: mean Dice rises and no class's Dice falls."""
    mean_up = np.mean(list(after.values())) > np.mean(list(before.values())) + eps
    return bool(mean_up and all(after[c] >= before[c] - eps for c in before))


def decide_postprocessing(results: list[dict], classes: dict[str, list[int]]) -> tuple[dict, dict]:
    """Decision dict and the table of tested variants (class-mean Dice of each)."""
    table = {key: mean_dice(results, key, classes) for key in results[0]}
    foreground_lcc = improves(table["fg"], table["none"])
    baseline = "fg" if foreground_lcc else "none"
    lcc_classes = {name: values for name, values in classes.items()
                   if improves(table[f"{baseline}|{name}"], table[baseline])}
    return {"foreground_lcc": foreground_lcc, "lcc_classes": lcc_classes}, table


def default_configs(work_dir: Path, plans: Plans, predict_missing: bool) -> tuple[list[str], dict[str, str]]:
    """Without --configs: every trained configuration whose CV predictions are complete (all trained ones with
    --predict-missing, which completes them), in plan order; and why each other model folder was left out."""
    status = cv_status(work_dir, plans)
    chosen = [c for c, state in status.items() if state == "complete" or predict_missing]
    if not chosen:
        raise UserError("no configuration with complete cross-validation predictions under models/; train every "
                        "fold (or pass --predict-missing, or --configs)", work_dir)
    return chosen, {c: state for c, state in status.items() if c not in chosen}


def find_best(work_dir: str | Path, configs: Sequence[str] | None, reference: str | Path | None = None,
              cv_dirs: dict[str, Path] | None = None, ensembles: bool = True, num_workers: int = 1,
              predict_missing: dict | None = None) -> dict:
    """Choose the configuration(s) and the post-processing from CV predictions; returns find_best.json's content.

    configs None: every configuration whose CV predictions are complete (`default_configs`).
    predict_missing (e.g. {"checkpoint": "final", "device": "auto", "tta": True}) first predicts
    absent validation cases of configurations without a --cv-dir, from the reference dataset's imagesTr.
    """
    work_dir = Path(work_dir)
    plans = read_plans(plans_path(work_dir))
    left_out: dict[str, str] = {}
    if configs is None:
        configs, left_out = default_configs(work_dir, plans, predict_missing is not None)
    configs = list(dict.fromkeys(configs))
    if not configs:
        raise UserError("--configs needs at least one configuration")
    classes, conversion = output_classes(plans), label_conversion(plans)
    root = reference_root(reference, work_dir)
    if predict_missing is not None:
        from segkit.evaluation.cv_predict import predict_missing_cv

        for config in configs:
            if config not in (cv_dirs or {}):
                predict_missing_cv(work_dir, config, root, **predict_missing)
    sources = resolve_sources(work_dir, configs, cv_dirs or {})
    references = resolve_reference(root)
    cases = sorted(next(iter(sources.values())))
    absent = [c for c in cases if c not in references]
    if absent:
        raise UserError(f"no reference label map for CV case(s) {', '.join(absent[:5])}", root)
    candidates = {candidate_name([c]): [c] for c in configs}
    if ensembles:
        candidates.update({candidate_name(pair): list(pair) for pair in combinations(configs, 2)})
    jobs: list[dict[str, Any]] = [{"case": case, "reference": references[case], "files": {c: sources[c][case] for c in configs},
             "classes": classes, "conversion": conversion, "candidates": candidates,
             "ignore_label": ignore_label_of(plans)} for case in cases]
    scores = _run(_score_candidates, jobs, num_workers, "find-best: candidates")
    table = {name: mean_dice(scores, name, classes) for name in candidates}
    ranking = sorted(candidates, key=lambda n: (-np.mean(list(table[n].values())), len(candidates[n]),
                                                list(candidates).index(n)))
    best = ranking[0]
    for job in jobs:
        job["members"] = candidates[best]
    variants = _run(_score_postprocessing, jobs, num_workers, "find-best: post-processing")
    decision, variant_table = decide_postprocessing(variants, classes)
    final = _run(_score_postprocessing, [{**job, "decision": decision} for job in jobs], num_workers,
                 "find-best: final")
    final_dice = mean_dice(final, "final", classes)
    return {
        "format": FIND_BEST_FORMAT, "configurations": configs, "left_out": left_out, "num_cases": len(cases),
        "classes": classes,
        "cv_sources": {c: str((cv_dirs or {}).get(c, validation_dir(model_dir(work_dir, c), "*")))
                       for c in configs},
        "candidates": [{"name": n, "members": candidates[n], "mean_dice": table[n],
                        "foreground_mean_dice": float(np.mean(list(table[n].values())))} for n in ranking],
        "best": {"name": best, "members": candidates[best],
                 "foreground_mean_dice": float(np.mean(list(table[best].values())))},
        "postprocessing": decision,
        "postprocessing_tests": variant_table,
        "dice_after_postprocessing": final_dice,
        "foreground_mean_dice_after_postprocessing": float(np.mean(list(final_dice.values()))),
        "per_case_dice": {job["case"]: score for job, score in zip(jobs, scores)},
    }
