"""`segkit demo`: run the whole pipeline on a generated phantom."""

from __future__ import annotations

import argparse
from pathlib import Path

from segkit.cli.options import add_network_option


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the demo subcommand."""
    parser = subparsers.add_parser("demo", help="run the whole pipeline on a generated phantom (a few CPU minutes)",
                                   description="Generate a multi-modal phantom, plan, preprocess, train, predict "
                                               "and evaluate it; print a Dice table and write a QC picture.")
    parser.add_argument("--out", default="segkit_demo", help="output folder (default: ./segkit_demo)")
    parser.add_argument("--minutes", type=float, default=3.0, help="training time budget in minutes (default 3)")
    parser.add_argument("--cases", type=int, default=10, help="training cases to generate (default 10)")
    add_network_option(parser, "auto: revmbconv when planning for a GPU budget, unet for this CPU")
    parser.add_argument("-j", "--num-workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the demo."""
    from segkit.cli.demo_run import run_demo

    run_demo(Path(args.out), minutes=args.minutes, num_cases=args.cases, network=args.network,
             workers=args.num_workers, seed=args.seed)
    return 0
