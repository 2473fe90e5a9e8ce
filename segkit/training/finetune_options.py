"""Fine-tuning defaults (no torch import: the CLI's `segkit train` options quote them at start-up; segkit/cli/train.py)."""

from __future__ import annotations

FINETUNE_LR_FACTOR = 0.3         # default learning rate when fine-tuning = recipe lr x this (docs/fine-tuning.md)
WARMUP_SHARE = 0.05              # default linear warm-up: this share of the steps after any encoder freeze
MAX_DEFAULT_WARMUP_STEPS = 500
