"""`segkit ensemble -i DIR1 DIR2 ... -o OUT`: average saved probabilities and write label maps."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ensemble subcommand."""
    parser = subparsers.add_parser(
        "ensemble", help="average the probabilities of several prediction folders",
        description="Average <CASE>.npz probabilities (from `segkit predict --save-probabilities`) of several "
                    "configurations or models and write one label map per case with the input's geometry.")
    parser.add_argument("-i", "--inputs", nargs="+", required=True, help="prediction folders (two or more)")
    parser.add_argument("-o", "--output", required=True, help="output folder")
    parser.add_argument("--save-probabilities", action="store_true", help="also write the averaged <CASE>.npz")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Ensemble the folders."""
    from segkit.inference.ensemble import ensemble_folders

    written = ensemble_folders(args.inputs, args.output, args.save_probabilities)
    print(f"ensembled {len(written)} case(s) from {len(args.inputs)} folders into {args.output}")
    return 0
