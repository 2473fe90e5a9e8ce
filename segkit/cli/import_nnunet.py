"""`segkit import-nnunet MODEL_FOLDER OUT`: convert an nnU-Net v2 trained model folder into a segkit one."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the import-nnunet subcommand."""
    parser = subparsers.add_parser(
        "import-nnunet", help="convert an nnU-Net v2 model folder (plans.json, dataset.json, fold_*/*.pth)",
        description="Read an nnU-Net v2 results folder <Trainer>__<Plans>__<configuration> without nnunetv2 "
                    "(checkpoints are loaded with weights_only=True and a numpy-scalar allowlist) and write a "
                    "segkit model folder that predict, export-model and batch runs accept.")
    parser.add_argument("model", help="nnU-Net model folder, e.g. nnUNet_results/Dataset001_X/"
                                      "nnUNetTrainer__nnUNetPlans__3d_fullres")
    parser.add_argument("output", help="segkit model folder to create (must not exist or be empty)")
    parser.add_argument("-f", "--folds", nargs="+", help="folds to convert (default: every fold with the checkpoint)")
    parser.add_argument("--checkpoint", "-chk", type=checkpoint_kind, choices=("final", "best", "latest"),
                        default="final", help="which nnU-Net checkpoint to convert: final (default), best, latest, "
                                              "or nnU-Net's file name checkpoint_best.pth")
    parser.set_defaults(func=run)


def checkpoint_kind(value: str) -> str:
    """'best' from 'best', 'checkpoint_best.pth' or 'checkpoint_best'."""
    return value.removesuffix(".pth").removeprefix("checkpoint_")


def run(args: argparse.Namespace) -> int:
    """Convert and say what was written."""
    from segkit.models.nnunet import convert_nnunet_model
    from segkit.plans import read_plans
    from segkit.workdir import plans_path

    output = convert_nnunet_model(args.model, args.output, args.checkpoint, args.folds)
    plans = read_plans(plans_path(output))
    (name, entry), = plans.configurations.items()
    folds = sorted(p.name for p in output.glob("fold_*"))
    print(f"wrote {output}: {name} ({entry.architecture.family}, {entry.spatial_dims}D, "
          f"{plans.label_mode}), {', '.join(folds)}")
    return 0
