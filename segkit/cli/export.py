"""`segkit export --format brats|msd -i PRED_DIR -o OUT --dataset RAW`: challenge submission files."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the export subcommand."""
    parser = subparsers.add_parser(
        "export", help="write predictions in a challenge's submission format (BraTS, MSD)",
        description="Translate label maps back to the challenge's label values and file names (uint8, the "
                    "input images' exact geometry). The dataset must come from `segkit convert`.")
    parser.add_argument("--format", required=True, choices=("brats", "msd"), dest="export_format")
    parser.add_argument("-i", "--input", required=True, help="prediction folder (label maps from predict/ensemble)")
    parser.add_argument("-o", "--output", required=True, help="output folder")
    parser.add_argument("--dataset", required=True, help="the raw dataset the predictions were made for")
    parser.add_argument("--task", help="MSD task folder name (default: from the dataset, e.g. Task01_BrainTumour)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Check every prediction, then write the challenge files."""
    from segkit.export.challenge import export_predictions

    written = export_predictions(args.export_format, args.input, args.output, args.dataset, args.task)
    folder = written[0].parent if written else args.output
    print(f"exported {len(written)} case(s) in {args.export_format} format into {folder}")
    return 0
