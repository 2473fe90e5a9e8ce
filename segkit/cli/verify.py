"""`segkit verify DATASET`: report every problem of a raw dataset as one table."""

from __future__ import annotations

import argparse
import sys

from segkit.cli.datasets import add_dataset_argument


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the verify subcommand."""
    parser = subparsers.add_parser(
        "verify", help="check a raw dataset and list every problem",
        description="Check every case of a raw dataset (readable files, channels, geometry, label values, "
                    "dataset.json) and print all problems as a table; exit 2 if there is any.")
    add_dataset_argument(parser, "raw dataset folder (dataset.json, imagesTr, labelsTr)")
    parser.add_argument("-j", "--num-workers", type=int, default=1, help="worker processes (default 1)")
    parser.add_argument("--json", dest="json_out", metavar="OUT", help="also write the problems as JSON to OUT")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Verify, print the table (or a one-line OK), optionally write JSON; exit 2 on problems."""
    from segkit.jsonio import write_json
    from segkit.verify import format_table, inspect_dataset

    report = inspect_dataset(args.dataset, args.num_workers)
    if args.json_out:
        write_json(args.json_out, {"dataset": str(args.dataset), "ok": report.ok,
                                   "num_training": report.num_training, "num_test": report.num_test,
                                   "problems": [p.to_json() for p in report.problems],
                                   "notes": [p.to_json() for p in report.notes]})
    if report.notes:
        print("information (not problems):")
        print(format_table(report.notes))
    if report.ok:
        print(f"OK: {args.dataset}: {report.num_training} training and {report.num_test} test case(s), "
              f"{report.num_channels} channel(s), no problems")
        return 0
    print(format_table(report.problems))
    cases = {p.case for p in report.problems}
    print(f"segkit verify: {len(report.problems)} problem(s) in {len(cases)} case(s) of {args.dataset}",
          file=sys.stderr)
    return 2
