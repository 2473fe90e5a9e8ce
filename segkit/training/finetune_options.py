"""`segkit train` fine-tuning options and their defaults (no torch import: the CLI registers them at start-up)."""

from __future__ import annotations

import argparse

FINETUNE_LR_FACTOR = 0.3         # default learning rate when fine-tuning = recipe lr x this (docs/fine-tuning.md)
WARMUP_SHARE = 0.05              # default linear warm-up: this share of the steps after any encoder freeze
MAX_DEFAULT_WARMUP_STEPS = 500


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """--pretrained, --pretrained-fold, --pretrained-checkpoint, --freeze-encoder, --warmup-steps."""
    parser.add_argument("--pretrained", metavar="SOURCE",
                        help="start from another model's weights: a checkpoint .pt, a model folder (or work dir), "
                             "or a model package .zip (checksums verified first); docs/fine-tuning.md")
    parser.add_argument("--pretrained-fold", metavar="F", help="fold of a model folder / package (default: its first)")
    parser.add_argument("--pretrained-checkpoint", choices=("final", "best", "latest"),
                        help="checkpoint kind of a model folder (default: final; a package: the one it holds)")
    parser.add_argument("--freeze-encoder", type=int, default=0, metavar="EPOCHS",
                        help="with --pretrained: train only decoder and heads for the first EPOCHS epochs, then all")
    parser.add_argument("--warmup-steps", type=int, metavar="N",
                        help=f"with --pretrained: linear lr warm-up over N steps once the encoder trains "
                             f"(default {WARMUP_SHARE:.0%}% of those steps, at most {MAX_DEFAULT_WARMUP_STEPS}; 0: none); "
                             f"the lr defaults to the recipe's x{FINETUNE_LR_FACTOR:g} (--recipe-set lr=VALUE sets it)")
