"""`segkit export-model MODEL -o model.zip`: package a trained model with checksums for deployment."""

from __future__ import annotations

import argparse

from segkit.cli.options import add_checkpoint_option


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the export-model subcommand."""
    parser = subparsers.add_parser(
        "export-model", help="package a trained model (plans, folds' checkpoints, post-processing) as one zip",
        description="Write plans.json, dataset.json, the chosen folds' checkpoints, find_best.json (when present) "
                    "and a manifest.json with sha256 checksums into one zip that `segkit predict -m` accepts.")
    parser.add_argument("model", help="model folder WORK/models/<config> (or WORK with -c)")
    parser.add_argument("-o", "--output", required=True, help="the package to write, e.g. model.zip")
    parser.add_argument("-c", "--configuration", help="configuration name (default: the model folder's)")
    parser.add_argument("-f", "--folds", nargs="+", help="folds to include (default: every fold with the checkpoint)")
    add_checkpoint_option(parser, "which checkpoint of each fold to package")
    parser.add_argument("--find-best", help="find_best.json to include (default: MODEL/ or WORK/find_best.json)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Build the package and print what it holds."""
    from segkit.export.package import export_model, sha256_of

    path, manifest = export_model(args.model, args.output, args.configuration, args.folds, args.checkpoint,
                                  args.find_best)
    post = "with" if manifest["postprocessing"] else "without"
    print(f"wrote {path}: {manifest['configuration']} folds {', '.join(manifest['folds'])} "
          f"(checkpoint_{manifest['checkpoint']}), {post} post-processing, {len(manifest['files'])} files; "
          f"sha256 {sha256_of(path)}")
    return 0
