"""`segkit preprocess DATASET -c CONFIG`: crop, normalise and resample the training cases."""

from __future__ import annotations

import argparse

from segkit.cli.datasets import add_dataset_argument


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the preprocess subcommand."""
    parser = subparsers.add_parser(
        "preprocess", help="crop, normalise and resample training cases as plans.json says",
        description="Write WORK/preprocessed/<CONFIG>/<CASE>.npy, <CASE>_seg.npy and <CASE>.json for every "
                    "training case. Finished cases (made with the same plans) are skipped unless --force.")
    add_dataset_argument(parser, "raw dataset folder (nnU-Net v2 layout)")
    parser.add_argument("--work-dir", help="work folder (default: see docs/environment.md)")
    parser.add_argument("--plans", help="plans file (default: WORK/plans.json)")
    parser.add_argument("-c", "--configurations", nargs="+", default=["3d_fullres"], metavar="CONFIG",
                        help="configuration(s) from plans.json (default: 3d_fullres)")
    parser.add_argument("-j", "--num-workers", type=int, default=1, help="worker processes, one case each at a time")
    parser.add_argument("--force", action="store_true", help="redo cases that are already complete")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Preprocess and print one line per configuration."""
    from segkit.errors import UserError
    from segkit.preprocessing.runner import preprocess_dataset

    if args.num_workers < 1:
        raise UserError(f"-j must be at least 1, got {args.num_workers}")
    summaries = preprocess_dataset(args.dataset, args.configurations, work_dir=args.work_dir,
                                   plans_file=args.plans, num_workers=args.num_workers, force=args.force)
    for summary in summaries:
        reused = f", {summary.reused} linked from an identical configuration" if summary.reused else ""
        print(f"{summary.config}: {summary.processed} preprocessed, {summary.skipped} already done{reused} "
              f"-> {summary.out_dir}")
    return 0
