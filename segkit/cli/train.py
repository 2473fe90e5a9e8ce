"""`segkit train DATASET -c CONFIG -f FOLD`: train one fold (or all data) of a planned, preprocessed dataset."""

from __future__ import annotations

import argparse
import time



def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `train` subcommand."""
    p = subparsers.add_parser("train", help="train a network on a preprocessed dataset",
                              description="Train one fold of a configuration; writes WORK/models/<CONFIG>/fold_<F>/. "
                                          "Multi-process: torchrun --nproc_per_node=N -m segkit train ...")
    p.add_argument("dataset", help="raw dataset folder (used to find the work dir and dataset.json)")
    p.add_argument("--work-dir", help="work folder (default: <DATASET>_segkit, or $SEGKIT_WORK/<name>)")
    p.add_argument("--plans", help="plans file (default: WORK/plans.json)")
    p.add_argument("-c", "--configuration", default="3d_fullres")
    p.add_argument("-f", "--fold", default="0", help="fold 0..4, or 'all' to train on every case")
    p.add_argument("--epochs", type=int, help="epochs (default 1000, or what --time-budget allows)")
    p.add_argument("--iterations-per-epoch", type=int, help="steps per epoch (default 250)")
    p.add_argument("--time-budget", type=float, metavar="MINUTES",
                   help="fit the schedule so training, validation and the final checkpoint end within MINUTES")
    p.add_argument("--early-stop", type=int, metavar="PATIENCE", help="stop after PATIENCE validations without a better Dice")
    p.add_argument("--validate-every", type=int, default=1, help="validate every N epochs (default 1)")
    p.add_argument("--resume", action="store_true", help="continue from fold_<F>/checkpoint_latest.pt")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda")
    p.add_argument("--precision", choices=("auto", "fp32", "bf16", "fp16"), default="auto",
                   help="training arithmetic (weights, optimiser and loss stay fp32): auto = bf16 on CUDA where "
                        "supported, else fp16; bf16 on CPUs with hardware bf16 (AMX/AVX512-BF16); else fp32")
    p.add_argument("--no-amp", action="store_true", help="same as --precision fp32")
    p.add_argument("--compile", action="store_true", help="torch.compile the network")
    p.add_argument("--channels-last", action="store_true", help="channels_last(_3d) memory layout")
    p.add_argument("--num-workers", type=int, default=1, help="background loader processes (0: in the main process)")
    p.add_argument("--augment", choices=("auto", "full", "fast", "light", "none"), default="auto",
                   help="full: spatial + intensity + mirror; light: no spatial transform; auto: full, except light "
                        "for a CPU time budget under 30 minutes")
    p.add_argument("--elastic", action="store_true", help="add elastic deformation to the spatial transform")
    p.add_argument("--batch-dice", action=argparse.BooleanOptionalAction, default=None,
                   help="Dice over the whole batch (default: the plan's batch_dice, else on for 3D, off for 2D)")
    p.add_argument("--recipe", choices=("auto", "nnunet", "short-cpu"), default="auto",
                   help="optimiser/loss/sampling recipe; auto: short-cpu on CPU with --time-budget under 30 min, "
                        "else nnU-Net's (docs/cli/train.md)")
    p.add_argument("--no-fit", action="store_true", help="never shrink the configuration for a CPU time budget")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--deterministic", action="store_true", help="torch.use_deterministic_algorithms(True)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Resolve inputs, prepare the model dir, train."""
    started = time.monotonic()
    import torch

    from segkit.training import distributed as dd
    from segkit.training.prepare import prepare_setup
    from segkit.training.trainer import train

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.deterministic:
        torch.use_deterministic_algorithms(True)
    device_type = "cuda" if args.device == "auto" and torch.cuda.is_available() else args.device.split(":")[0]
    if device_type == "auto":
        device_type = "cpu"
    info = dd.init_from_env(device_type)
    try:
        setup = prepare_setup(args, info, device_type, started)
        final = train(setup, info)
    finally:
        dd.cleanup(info)
    if info.is_main:
        print(f"trained {final['epochs_run']} epochs ({final['steps']} steps) in {final['elapsed_s']} s; "
              f"best validation mean Dice {final['best_val_mean_dice']:.4f} -> {setup.fold_dir}")
    return 0
