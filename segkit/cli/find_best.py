"""`segkit find-best WORK [--configs ...]`: pick configuration(s) and post-processing from cross-validation."""

from __future__ import annotations

import argparse
from pathlib import Path

from segkit.cli.options import add_checkpoint_option, add_device_option


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the find-best subcommand."""
    parser = subparsers.add_parser(
        "find-best", help="choose the best configuration or ensemble pair and the post-processing from CV",
        description="Score each configuration and each pair (probabilities averaged) on the cross-validation "
                    "predictions, choose the best, decide largest-connected-component post-processing, "
                    "and write find_best.json.")
    parser.add_argument("work_dir", help="work folder (plans.json, models/<config>/splits.json)")
    parser.add_argument("--configs", "-c", nargs="+",
                        help="configurations to compare, e.g. 3d_fullres 2d 3d_cascade_fullres (default: every "
                             "configuration under WORK/models whose CV predictions are complete; with "
                             "--predict-missing, every trained one)")
    parser.add_argument("--cv-dir", action="append", metavar="CONFIG=DIR",
                        help="folder of a configuration's CV predictions (<CASE>.npz) instead of "
                             "models/<config>/fold_k/validation/ (repeatable)")
    parser.add_argument("--ref", help="reference labels: a raw dataset folder or a folder of label maps "
                                      "(default: the dataset next to a WORK named <DATASET>_segkit)")
    parser.add_argument("--predict-missing", action="store_true",
                        help="first predict each fold's missing validation cases with that fold's model "
                             "(needs --ref DATASET or the default dataset, whose imagesTr holds the images)")
    add_checkpoint_option(parser, "checkpoint used by --predict-missing")
    add_device_option(parser, help_text="device for --predict-missing: auto (CUDA if available), cpu or cuda[:n]")
    parser.add_argument("--no-tta", action="store_true", help="--predict-missing without mirroring TTA")
    parser.add_argument("--no-ensembles", action="store_true", help="consider single configurations only")
    parser.add_argument("-j", "--num-workers", type=int, default=1, help="worker processes")
    parser.add_argument("-o", "--output", help="output JSON (default: WORK/find_best.json)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the selection and write find_best.json."""
    from segkit.evaluation.cv_predictions import parse_cv_dirs
    from segkit.evaluation.find_best import find_best
    from segkit.models.find_best import write_find_best
    from segkit.workdir import find_best_path

    result = find_best(Path(args.work_dir), args.configs, reference=args.ref, cv_dirs=parse_cv_dirs(args.cv_dir),
                       ensembles=not args.no_ensembles, num_workers=args.num_workers,
                       predict_missing={"checkpoint": args.checkpoint, "device": args.device, "tta": not args.no_tta}
                       if args.predict_missing else None)
    output = Path(args.output) if args.output else find_best_path(Path(args.work_dir))
    write_find_best(output, result)
    for candidate in result["candidates"]:
        print(f"{candidate['name']:<32} mean Dice {candidate['foreground_mean_dice']:.4f}")
    decision = result["postprocessing"]
    print(f"best: {result['best']['name']}; foreground LCC: {decision['foreground_lcc']}; "
          f"LCC per class: {', '.join(decision['lcc_classes']) or 'none'}; "
          f"mean Dice after post-processing {result['foreground_mean_dice_after_postprocessing']:.4f}")
    for config, reason in result["left_out"].items():
        print(f"left out {config}: {reason}")
    print(f"wrote {output}")
    return 0
