"""`segkit predict -i INPUT -o OUTPUT -m MODEL`: label maps (and probabilities) for new images."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the predict subcommand."""
    parser = subparsers.add_parser(
        "predict", help="predict label maps for new images with a trained model",
        description="Sliding-window prediction (Gaussian-weighted tiles, mirroring TTA), fold ensembling, "
                    "and label maps written with each input's exact geometry.")
    add_arguments(parser)
    parser.set_defaults(func=run)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The predict flags (shared with wrappers that extend predict)."""
    parser.add_argument("-i", "--input", required=True,
                        help="image file (one-channel model), folder of CASE_XXXX files, or raw dataset folder")
    parser.add_argument("-o", "--output", required=True, help="output folder")
    parser.add_argument("-m", "--model", required=True,
                        help="model folder WORK/models/<config> (or WORK with -c), or a model.zip from export-model")
    parser.add_argument("-c", "--configuration", help="configuration name (default: the model folder's)")
    parser.add_argument("-f", "--folds", nargs="+", help="folds to ensemble, e.g. 0 1 2 3 4 or all "
                                                          "(default: every trained fold)")
    parser.add_argument("--checkpoint", choices=("final", "best", "latest"), default="final")
    parser.add_argument("--save-probabilities", action="store_true", help="also write <CASE>.npz probabilities")
    parser.add_argument("--device", default="auto", help="auto (CUDA if available), cpu or cuda[:n]")
    parser.add_argument("--step", type=float, default=0.5, help="tile step as a fraction of the patch (default 0.5)")
    parser.add_argument("--tile-batch", type=int, default=4, help="tiles per forward pass (default 4)")
    parser.add_argument("--no-tta", action="store_true", help="disable mirroring test-time augmentation")
    parser.add_argument("--precision", choices=("auto", "fp32", "bf16", "fp16"), default="auto",
                        help="network arithmetic (logits are accumulated in fp32): auto = fp16 on CUDA, bf16 on "
                             "CPUs with AMX/AVX512-BF16, else fp32; fp32 gives bit-stable results")
    parser.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's choice)")
    from segkit.batch.predict_cli import add_batch_arguments

    add_batch_arguments(parser)  # --continue, --dicom-seg, --statistics, ... (docs/deployment.md)


def inference_options(args: argparse.Namespace) -> "object":
    """InferenceOptions from parsed flags."""
    from segkit.inference.predictor import InferenceOptions

    return InferenceOptions(step=args.step, tta=not args.no_tta, tile_batch=args.tile_batch,
                            save_probabilities=args.save_probabilities, precision=args.precision)


def run(args: argparse.Namespace) -> int:
    """Load the model, find the cases, predict them into the output folder."""
    import torch

    from segkit.inference.cases import find_input_cases
    from segkit.inference.model import load_model
    from segkit.inference.predictor import predict_to_folder

    from segkit.batch.predict_cli import run_if_batch

    if args.threads:
        torch.set_num_threads(args.threads)
    batch_exit_code = run_if_batch(args, inference_options)  # also turns -m model.zip into its verified folder
    if batch_exit_code is not None:
        return batch_exit_code
    model = load_model(args.model, args.configuration, args.folds, args.checkpoint, args.device)
    cases = find_input_cases(args.input, model.num_channels)
    paths = predict_to_folder(model, cases, args.output, inference_options(args))
    print(f"predicted {len(paths)} case(s) with {model.configuration} folds {', '.join(model.folds)} "
          f"on {model.device} into {args.output}")
    return 0
