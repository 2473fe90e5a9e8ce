"""`segkit export-model MODEL -o model.zip`: package a trained model (or find-best's ensemble) for deployment."""

from __future__ import annotations

import argparse
import sys

from segkit.cli.options import add_checkpoint_option


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the export-model subcommand."""
    parser = subparsers.add_parser(
        "export-model", help="package a trained model or find-best's ensemble (plans, checkpoints, post-processing)",
        description="Write each configuration's plans.json, dataset.json and chosen folds' checkpoints, the "
                    "post-processing find-best decided for exactly this model (when it did), and a manifest.json "
                    "with sha256 checksums into one zip that `segkit predict -m` and segkit.Predictor accept. "
                    "Given a work dir, packages find-best's choice (one configuration or an ensemble of two).")
    parser.add_argument("model", help="work dir WORK (find-best's choice, or -c), a model folder WORK/models/<config>, "
                                      "or an nnU-Net v2 model folder (converted as predict -m does)")
    parser.add_argument("-o", "--output", required=True, help="the package to write, e.g. model.zip")
    parser.add_argument("-c", "--configuration", nargs="+",
                        help="configuration(s) to package (default: find-best's choice, else the model folder's)")
    parser.add_argument("-f", "--folds", nargs="+", help="folds to include (default: every fold with the checkpoint)")
    add_checkpoint_option(parser, "which checkpoint of each fold to package")
    parser.add_argument("--format", dest="network_format", choices=("torch", "onnx"), default="torch",
                        help="how the networks travel: torch checkpoints (default) or ONNX files (opset 17, dynamic "
                             "batch and spatial axes; runs with predict --backend onnxruntime/openvino or without "
                             "segkit, see docs/onnx.md; needs segkit-revmb[onnx])")
    parser.add_argument("--find-best", help="find_best.json whose decision to include (default: WORK/find_best.json); "
                                            "it must have been made for the packaged configuration(s)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Build the package and print what it holds."""
    from segkit.models.nnunet import cached_segkit_model, is_nnunet_model_folder
    from segkit.models.package import export_model, sha256_of

    model = args.model
    if is_nnunet_model_folder(model):   # an nnU-Net v2 results folder: converted (and cached) as predict -m does
        model = cached_segkit_model(model, args.checkpoint)
    path, manifest = export_model(model, args.output, args.configuration, args.folds, args.checkpoint,
                                  args.find_best, args.network_format)
    post = "with" if manifest["postprocessing"] else "without"
    held = " + ".join(f"{name} folds {', '.join(folds)}" for name, folds in manifest["folds"].items())
    networks = "as ONNX" if manifest.get("network_format") == "onnx" else ""
    print(f"wrote {path}: {held} (checkpoint_{manifest['checkpoint']}{networks and ' ' + networks}), {post} post-processing, "
          f"{len(manifest['files'])} files; sha256 {sha256_of(path)}")
    if manifest.get("postprocessing_note"):
        print(f"segkit export-model: note: {manifest['postprocessing_note']}", file=sys.stderr)
    return 0
