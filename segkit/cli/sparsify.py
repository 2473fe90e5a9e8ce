"""`segkit sparsify DATASET OUT`: a sparsely annotated copy of a dense dataset (every N-th slice, or scribbles)."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the sparsify subcommand."""
    parser = subparsers.add_parser(
        "sparsify", help="make a sparsely annotated copy of a dataset (slices or scribbles, ignore label)",
        description="Copy a densely labelled dataset keeping labels only on every N-th slice along the chosen axes "
                    "(--slices N --axes ...) or on skeleton scribbles per structure (--scribbles); every other "
                    "voxel gets the 'ignore' label. Measure how much annotation a task needs before paying "
                    "annotators. Deterministic for a given --seed.")
    parser.add_argument("paths", nargs="*", metavar="DATASET OUT",
                        help="densely labelled raw dataset folder (dataset.json, imagesTr, labelsTr), then the new "
                             "dataset folder to write (must not exist); with -d ID only OUT")
    parser.add_argument("-d", "--dataset-id", metavar="ID",
                        help="dataset ID or DatasetXXX_Name, looked up in $SEGKIT_RAW then $nnUNet_raw")
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--slices", type=int, metavar="N", help="keep every N-th slice along each of --axes")
    mode.add_argument("--scribbles", action="store_true",
                      help="keep the 2D skeleton of each structure (background included) in a few slices")
    parser.add_argument("--axes", type=int, nargs="+", default=[0], metavar="AXIS",
                        help="array axes of the slices, 0 1 2 = z y x (default: 0); scribbles use the first")
    parser.add_argument("--scribble-slices", type=int, default=3, metavar="K",
                        help="with --scribbles: slices per structure and case (default 3)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (slice offsets, scribble slices)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Write the sparse copy and print how much of it is annotated."""
    from segkit.cli.datasets import resolve_dataset
    from segkit.errors import UserError
    from segkit.sparsify import SparsifyOptions, sparsify_dataset

    expected = 1 if args.dataset_id else 2
    if len(args.paths) != expected:
        raise UserError("give DATASET OUT, or -d ID OUT" if expected == 2 else
                        f"with -d {args.dataset_id} give only OUT (got {len(args.paths)} paths)")
    args.dataset = resolve_dataset(None if args.dataset_id else args.paths[0], args.dataset_id)
    args.out = args.paths[-1]
    options = SparsifyOptions(slices=args.slices, axes=tuple(args.axes), scribbles=args.scribbles,
                              scribble_slices=args.scribble_slices, seed=args.seed)
    record = sparsify_dataset(args.dataset, args.out, options)
    print(f"wrote {args.out}: {record['num_cases']} case(s), {100 * record['annotated_fraction']:.1f} % of voxels "
          f"annotated, the rest labelled ignore ({record['ignore_label']})")
    return 0
