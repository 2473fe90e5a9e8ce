"""`segkit postprocess -i PRED -o OUT --decision find_best.json`: apply the largest-component decision."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the postprocess subcommand."""
    parser = subparsers.add_parser(
        "postprocess", help="apply find-best's largest-connected-component decision to label maps",
        description="Apply a post-processing decision (find_best.json or its 'postprocessing' entry) to every "
                    "label map in a folder; outputs keep the input geometry and are written atomically.")
    parser.add_argument("-i", "--input", required=True, help="folder of predicted label maps")
    parser.add_argument("-o", "--output", required=True, help="output folder (may equal the input)")
    parser.add_argument("--decision", required=True, help="find_best.json or a decision JSON")
    parser.add_argument("-j", "--num-workers", type=int, default=1, help="worker processes")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Load the decision, post-process the folder, say what was done."""
    from segkit.evaluation.postprocess import postprocess_folder
    from segkit.models.postprocessing import load_decision

    decision = load_decision(args.decision)
    written = postprocess_folder(args.input, args.output, decision, num_workers=args.num_workers)
    print(f"foreground LCC: {decision['foreground_lcc']}; LCC per class: "
          f"{', '.join(decision['lcc_classes']) or 'none'}; wrote {len(written)} file(s) to {args.output}")
    return 0
