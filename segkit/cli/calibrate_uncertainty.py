"""`segkit calibrate-uncertainty WORK [-c CONFIG]`: the review threshold of predict --uncertainty, from CV."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the calibrate-uncertainty subcommand."""
    parser = subparsers.add_parser(
        "calibrate-uncertainty", help="calibrate the uncertainty review threshold on cross-validation predictions",
        description="Score every cross-validation case's uncertainty (from its saved probabilities) against its "
                    "Dice, report how well the score ranks the cases (AUROC for 'below the median Dice'), pick the "
                    "review threshold with the best F1 and write models/<config>/uncertainty_calibration.json, "
                    "which segkit predict --uncertainty uses to flag cases and export-model packages.")
    parser.add_argument("work_dir", help="work folder (plans.json, models/<config>/fold_k/validation/)")
    parser.add_argument("-c", "--configuration",
                        help="configuration (default: find-best's choice when it is one configuration)")
    parser.add_argument("--ref", help="reference labels: a raw dataset folder or a folder of label maps "
                                      "(default: the dataset next to a WORK named <DATASET>_segkit)")
    parser.add_argument("--cv-dir", help="folder of the configuration's CV predictions (<CASE>.npz) instead of "
                                         "models/<config>/fold_k/validation/")
    parser.add_argument("-o", "--output", help="output JSON (default: WORK/models/<config>/uncertainty_calibration.json)")
    parser.set_defaults(func=run)


def default_configuration(work_dir: Path) -> str:
    """find-best's choice when it is a single configuration; else a UserError asking for -c."""
    from segkit.errors import UserError
    from segkit.models.find_best import read_find_best
    from segkit.workdir import find_best_path

    path = find_best_path(work_dir)
    members = read_find_best(path).get("best", {}).get("members") if path.is_file() else None
    if not members or len(members) != 1:
        raise UserError("name the configuration with -c (find-best has not chosen a single configuration)", work_dir)
    return str(members[0])


def run(args: argparse.Namespace) -> int:
    """Calibrate, write the file, print the result."""
    from segkit.evaluation.uncertainty_calibration import calibrate_uncertainty

    work_dir = Path(args.work_dir)
    config = args.configuration or default_configuration(work_dir)
    calibration, path = calibrate_uncertainty(work_dir, config, args.ref, args.cv_dir, args.output)
    quality = calibration["quality"]

    def number(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.3f}"

    print(f"{config}: {calibration['num_cases']} cross-validation cases, median Dice {calibration['median_dice']:.4f}")
    print(f"score ranks the cases: AUROC {number(quality['auroc'])} for 'below the median Dice', Spearman "
          f"(score vs Dice) {number(quality['spearman_score_vs_dice'])}, mean per-structure AUROC "
          f"{number(quality['structure_auroc'])}")
    print(f"review threshold {calibration['threshold']:.4f}: precision {quality['precision']:.3f}, recall "
          f"{quality['recall']:.3f}, flags {100 * quality['flagged_fraction']:.0f} % of the cases")
    print(f"wrote {path}")
    return 0
