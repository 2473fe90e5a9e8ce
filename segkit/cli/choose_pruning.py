"""`segkit choose-pruning MODEL`: score each UNet++ pruning level on validation, record the choice."""

from __future__ import annotations

import argparse

from segkit.cli.options import add_checkpoint_option, add_device_option


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the choose-pruning subcommand."""
    parser = subparsers.add_parser(
        "choose-pruning", help="choose the UNet++ inference pruning level on the validation cases",
        description="Predict every fold's validation cases with each nested UNet++ output X^{0,j} (the "
                    "sub-network pruned to depth j), report Dice and time per level, and record the shallowest "
                    "level within --tolerance of the best mean Dice in MODEL/pruning.json; segkit predict "
                    "then uses that sub-network.")
    parser.add_argument("model", help="model folder (WORK/models/<config>) or work dir")
    parser.add_argument("-c", "--configuration", help="configuration when MODEL is a work dir")
    parser.add_argument("-f", "--folds", nargs="+", help="folds to score (default: every fold with a checkpoint)")
    add_checkpoint_option(parser)
    add_device_option(parser)
    parser.add_argument("--tolerance", type=float, default=0.005,  # DEFAULT_TOLERANCE (torch-free here)
                        help="largest mean-Dice loss accepted for a faster level (default: %(default)s)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Score the levels, write pruning.json, print the table."""
    from segkit.evaluation.choose_pruning import choose_pruning, format_levels

    record, path = choose_pruning(args.model, args.configuration, args.folds, args.checkpoint, args.tolerance,
                            args.device)
    print(format_levels(record))
    print(f"chosen prune level {record['prune_level']} of {record['depth']} "
          f"({record['cases']} validation cases, folds {', '.join(record['folds'])})")
    print(f"wrote {path}")
    return 0
