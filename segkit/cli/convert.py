"""`segkit convert SRC DEST`: import an MSD or BraTS folder into the raw dataset layout."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the convert subcommand."""
    parser = subparsers.add_parser(
        "convert", help="import an MSD or BraTS folder into the raw dataset layout",
        description="Convert a Medical Segmentation Decathlon task or a BraTS 2021 / 2023+ folder into "
                    "the nnU-Net v2 raw layout (imagesTr/CASE_0000.nii.gz, labelsTr, dataset.json).")
    parser.add_argument("src", help="source folder (MSD task with dataset.json, or BraTS case folders)")
    parser.add_argument("dest", help="destination dataset folder (must be empty unless --overwrite)")
    parser.add_argument("--format", dest="format_name", default="auto",
                        choices=("auto", "msd", "brats2021", "brats2023"),
                        help="source format (default: detect)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace dataset.json, imagesTr, labelsTr and imagesTs in a non-empty DEST")
    parser.add_argument("-j", "--num-workers", type=int, default=1, help="worker processes (default 1)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the conversion and print a one-line summary."""
    from segkit.io.convert import convert_dataset

    dataset_json = convert_dataset(args.src, args.dest, args.format_name, args.overwrite, args.num_workers)
    source = dataset_json["segkit_source"]["format"]
    print(f"converted {dataset_json['numTraining']} training and {dataset_json.get('numTest', 0)} test case(s) "
          f"from {source} into {args.dest}")
    return 0
