"""`segkit train DATASET -c CONFIG -f FOLD`: train one fold (or all data) of a planned, preprocessed dataset."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from segkit.cli.datasets import add_dataset_argument
from segkit.cli.options import add_device_option, add_precision_option
from segkit.training.finetune_options import FINETUNE_LR_FACTOR, MAX_DEFAULT_WARMUP_STEPS, WARMUP_SHARE

if TYPE_CHECKING:
    from segkit.training.request import TrainRequest


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `train` subcommand."""
    p = subparsers.add_parser("train", help="train a network on a preprocessed dataset",
                              description="Train one fold of a configuration; writes WORK/models/<CONFIG>/fold_<F>/. "
                                          "Multi-process: torchrun --nproc_per_node=N -m segkit train ...")
    add_dataset_argument(p, "raw dataset folder (used to find the work dir and dataset.json)")
    p.set_defaults(nnunet_positionals=("configuration", "fold"))   # `segkit train 1 3d_fullres 0`, nnU-Net's order
    p.add_argument("--work-dir", help="work folder (default: see docs/environment.md)")
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
    p.add_argument("--overwrite", action="store_true",
                   help="train a fold that already has checkpoint_final.pt again from scratch (refused otherwise)")
    p.add_argument("--seed", type=int, default=0)
    add_device_option(p)
    add_precision_option(p, "training arithmetic (weights, optimiser and loss stay fp32): auto = bf16 on CUDA "
                            "where supported, else fp16; bf16 on CPUs with hardware bf16 (AMX/AVX512-BF16); else fp32")
    p.add_argument("--no-amp", action="store_true", help="same as --precision fp32")
    p.add_argument("--compile", nargs="?", const="network", default="off", choices=("off", "network", "branches"),
                   help="torch.compile: the whole network (--compile / --compile network) or each reversible F/G "
                        "branch (--compile branches); default off")
    p.add_argument("--channels-last", action="store_true", help="channels_last(_3d) memory layout")
    p.add_argument("--cudnn-benchmark", action=argparse.BooleanOptionalAction, default=False,
                   help="cuDNN autotuner on CUDA (default off: not measured faster yet, docs/benchmarks.md)")
    p.add_argument("--num-workers", type=int, default=1, help="background loader processes (0: in the main process)")
    p.add_argument("--augment", choices=("auto", "full", "fast", "light", "none"), default="auto",
                   help="full: spatial + intensity + mirror; fast: batched torch spatial transform + bias field + "
                        "thick-slice simulation + intensity + mirror; light: no spatial transform; auto: the recipe's "
                        "(full, except light for a CPU time budget under 30 minutes)")
    p.add_argument("--elastic", action="store_true", help="add elastic deformation to the spatial transform")
    p.add_argument("--batch-dice", action=argparse.BooleanOptionalAction, default=None,
                   help="Dice over the whole batch (default: the plan's batch_dice, else on for 3D, off for 2D)")
    p.add_argument("--recipe", choices=("auto", "nnunet", "short-cpu"), default="auto",
                   help="optimiser/loss/sampling recipe; auto: short-cpu on CPU with --time-budget under 30 min, "
                        "else nnU-Net's (docs/cli/train.md)")
    p.add_argument("--recipe-set", action="append", metavar="FIELD=VALUE",
                   help="override one recipe field (repeatable), e.g. lr=3e-3, optimizer=adamw, grad_clip=1, "
                        "foreground_fraction=0.5; fields in docs/cli/train.md")
    p.add_argument("--no-fit", action="store_true", help="never shrink the configuration for a CPU time budget")
    p.add_argument("--predict-validation", action=argparse.BooleanOptionalAction, default=None,
                   help="after a numbered fold, predict its validation cases into fold_<F>/validation/ as "
                        "`find-best --predict-missing` would (default: on when a cascade stage of this plan "
                        "trains on this configuration's predictions, e.g. 3d_lowres)")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--deterministic", action="store_true", help="torch.use_deterministic_algorithms(True)")
    p.add_argument("--quiet", action="store_true", help="no progress bar and no per-epoch lines")
    add_finetune_arguments(p)   # --pretrained, --pretrained-fold/-checkpoint, --freeze-encoder, --warmup-steps
    p.set_defaults(func=run)


def request_from_args(args: argparse.Namespace) -> TrainRequest:
    """The typed TrainRequest for parsed `segkit train` arguments (recipe flags become overrides)."""
    from pathlib import Path

    from segkit.training.recipe import parse_overrides
    from segkit.training.request import TrainRequest
    from segkit.training.speed import SpeedSwitches

    overrides = {"epochs": args.epochs, "iterations_per_epoch": args.iterations_per_epoch,
                 "augment": None if args.augment == "auto" else args.augment,
                 "elastic": True if args.elastic else None, "batch_dice": args.batch_dice}
    overrides = {k: v for k, v in overrides.items() if v is not None} | parse_overrides(args.recipe_set)
    return TrainRequest(
        dataset=Path(args.dataset), configuration=args.configuration, fold=str(args.fold),
        work_dir=Path(args.work_dir) if args.work_dir else None, plans=Path(args.plans) if args.plans else None,
        time_budget_min=args.time_budget, early_stop=args.early_stop, validate_every=args.validate_every,
        resume=args.resume, seed=args.seed, recipe=args.recipe, recipe_overrides=overrides,
        precision="fp32" if args.no_amp else args.precision, pretrained=args.pretrained,
        pretrained_fold=args.pretrained_fold, pretrained_checkpoint=args.pretrained_checkpoint,
        freeze_encoder=args.freeze_encoder, warmup_steps=args.warmup_steps,
        speed=SpeedSwitches(channels_last=args.channels_last, compile=args.compile, cudnn_benchmark=args.cudnn_benchmark),
        num_workers=args.num_workers, fit=not args.no_fit, progress=not args.quiet, overwrite=args.overwrite,
        predict_validation=args.predict_validation)


def run(args: argparse.Namespace) -> int:
    """Resolve inputs, prepare the model dir, train."""
    import time

    import torch

    # the command's start (the process's, run from the shell; main()'s call in-process): the budget's clock
    started = getattr(args, "started_at", None) or time.monotonic()

    from segkit.errors import UserError
    from segkit.training import distributed as dd
    from segkit.training.prepare import prepare_setup
    from segkit.training.trainer import train

    request = request_from_args(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.deterministic:
        torch.use_deterministic_algorithms(True)
    device_type = "cuda" if args.device == "auto" and torch.cuda.is_available() else args.device.split(":")[0]
    if device_type == "auto":
        device_type = "cpu"
    if device_type == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: CUDA is not available on this machine (use --device cpu)")
    info = dd.init_from_env(device_type)
    try:
        setup = prepare_setup(request, info, device_type, started)
        final = train(setup, info)
    finally:
        dd.cleanup(info)
    if info.is_main:
        print(f"trained {final['epochs_run']} epochs ({final['steps']} steps) in {final['elapsed_s']} s "
              f"-> {setup.fold_dir}")
        from segkit.workdir import model_dir, resolve_work_dir, validation_dir

        work = resolve_work_dir(request.dataset, request.work_dir)
        whole = None
        if setup.predict_validation:
            from segkit.evaluation.cv_predict import fold_validation_dice, predict_fold_validation

            count = predict_fold_validation(work, request.configuration, request.dataset, int(request.fold),
                                            device=setup.device.type)
            print(f"predicted the fold's {count} validation case(s) -> "
                  f"{validation_dir(model_dir(work, request.configuration), request.fold)}")
            whole = fold_validation_dice(work, request.configuration, request.dataset, int(request.fold))
        print(quality_message(final, whole, work))
    return 0


def quality_message(final: dict, whole: tuple[float, int] | None, work: Path) -> str:
    """How good the model is: the whole-case Dice when measured, else what the training Dice was and was not."""
    validation = final.get("validation") or {"scope": "full"}
    best = final["best_val_mean_dice"]
    if whole is not None:
        return (f"model quality: mean Dice {whole[0]:.4f} on the fold's {whole[1]} whole validation case(s) "
                f"(predicted as `segkit predict` does)")
    if best < 0:
        return f"model quality: not measured (no validation case); run `segkit find-best {work} --predict-missing`"
    if validation["scope"] == "sampled":
        return (f"model quality: not measured on whole cases. The training validation Dice {best:.4f} was sampled "
                f"({validation['fraction']:.0%} of each validation case, around the structures) and overstates "
                f"it; measure with --predict-validation or `segkit find-best {work} --predict-missing`")
    return f"model quality: best validation mean Dice {best:.4f} on the fold's whole validation cases (no TTA)"


def add_finetune_arguments(parser: argparse.ArgumentParser) -> None:
    """--pretrained, --pretrained-fold, --pretrained-checkpoint, --freeze-encoder, --warmup-steps."""
    parser.add_argument("--pretrained", metavar="SOURCE",
                        help="start from another model's weights: a checkpoint .pt, a model folder (or work dir), "
                             "an nnU-Net v2 model folder, or a model package .zip (checksums verified first); "
                             "docs/fine-tuning.md")
    parser.add_argument("--pretrained-fold", metavar="F", help="fold of a model folder / package (default: its first)")
    parser.add_argument("--pretrained-checkpoint", choices=("final", "best", "latest"),
                        help="checkpoint kind of a model folder (default: final; a package: the one it holds)")
    parser.add_argument("--freeze-encoder", type=int, default=0, metavar="EPOCHS",
                        help="with --pretrained: train only decoder and heads for the first EPOCHS epochs, then all")
    parser.add_argument("--warmup-steps", type=int, metavar="N",
                        help=f"with --pretrained: linear lr warm-up over N steps once the encoder trains "
                             f"(default {WARMUP_SHARE:.0%}% of those steps, at most {MAX_DEFAULT_WARMUP_STEPS}; 0: none); "
                             f"the lr defaults to the recipe's x{FINETUNE_LR_FACTOR:g} (--recipe-set lr=VALUE sets it)")
