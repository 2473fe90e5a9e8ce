"""`segkit evaluate PRED REF`: Dice, IoU, HD95 and NSD per case and class, summary.json + CSV."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the evaluate subcommand."""
    parser = subparsers.add_parser(
        "evaluate", help="score predicted label maps against references (Dice, IoU, HD95, NSD)",
        description="Evaluate predicted label maps (PRED: folder or file) against reference label maps "
                    "(REF: folder or file), per case and per class or region, in physical units (mm).")
    parser.add_argument("pred", help="folder of predicted label maps (CASE.nii.gz ...), or one file")
    parser.add_argument("ref", help="folder of reference label maps (e.g. DATASET/labelsTr), or one file")
    parser.add_argument("--labels", nargs="+", metavar="SPEC",
                        help="classes to score: VALUE or NAME=V1,V2 for a region (union of values), "
                             "e.g. --labels WT=1,2,3 TC=1,3 ET=3 (default: every non-zero value present)")
    parser.add_argument("--regions-from", metavar="DATASET",
                        help="take the classes/regions from DATASET/dataset.json 'labels'")
    parser.add_argument("--ignore-label", type=int, metavar="VALUE",
                        help="reference value of unannotated voxels, left out of every metric (default: the 'ignore' "
                             "label of --regions-from's or REF's dataset.json)")
    parser.add_argument("--nsd-tolerance", type=float, default=1.0, metavar="MM",
                        help="normalised surface Dice tolerance in mm (default 1.0)")
    parser.add_argument("--hd-empty-penalty", type=float, default=373.13, metavar="MM",
                        help="HD95 when exactly one of prediction/reference is empty (default: BraTS 373.13)")
    parser.add_argument("--allow-missing", action="store_true",
                        help="skip reference cases without a prediction (listed in summary.json) instead of failing")
    parser.add_argument("--subset", action="store_true",
                        help="the references cover only some of the predictions (otherwise that looks like swapped "
                             "arguments and is refused)")
    parser.add_argument("-j", "--num-workers", type=int, default=1, help="worker processes")
    parser.add_argument("-o", "--output", default=None,
                        help="summary JSON path (default: PRED/summary.json); the CSV goes beside it")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Evaluate, write summary.json and the CSV, print the class means."""
    from segkit.errors import UserError
    from segkit.evaluation.evaluate import (
        check_argument_order,
        classes_from_dataset,
        evaluate_folders,
        format_means,
        ignore_label_of,
        parse_label_specs,
        write_summary,
    )

    if args.labels and args.regions_from:
        raise UserError("give either --labels or --regions-from, not both")
    classes = parse_label_specs(args.labels) if args.labels else None
    ignore_label = args.ignore_label
    if args.regions_from:
        classes = classes_from_dataset(args.regions_from)
        ignore_label = ignore_label if ignore_label is not None else ignore_label_of(args.regions_from)
    pred = Path(args.pred)
    default_dir = pred if pred.is_dir() else pred.parent
    output = Path(args.output) if args.output else default_dir / "summary.json"
    check_argument_order(pred, Path(args.ref), output, args.subset)
    summary = evaluate_folders(pred, args.ref, classes, nsd_tolerance_mm=args.nsd_tolerance,
                               hd_empty_penalty_mm=args.hd_empty_penalty, allow_missing=args.allow_missing,
                               num_workers=args.num_workers, ignore_label=ignore_label)
    json_path, csv_path = write_summary(summary, output)
    print(format_means(summary))
    if summary["missing_predictions"]:
        print(f"skipped {len(summary['missing_predictions'])} case(s) without prediction")
    print(f"\nwrote {json_path} and {csv_path} ({summary['num_cases']} cases)")
    return 0
