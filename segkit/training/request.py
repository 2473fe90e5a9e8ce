"""`TrainRequest`: what a user asks of `segkit train`, typed and frozen (the CLI builds it; so can code)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from segkit.training.speed import SpeedSwitches


@dataclass(frozen=True)
class TrainRequest:
    """One `segkit train` invocation; recipe fields the user set go in recipe_overrides."""

    dataset: Path
    configuration: str = "3d_fullres"
    fold: str = "0"                      # "0".."4" or "all"
    work_dir: Path | None = None
    plans: Path | None = None
    time_budget_min: float | None = None
    early_stop: int | None = None
    validate_every: int = 1
    resume: bool = False
    seed: int = 0
    recipe: str = "auto"                 # auto | nnunet | short-cpu
    recipe_overrides: Mapping[str, Any] = field(default_factory=dict)   # Recipe field -> value
    precision: str = "auto"              # auto | fp32 | bf16 | fp16
    speed: SpeedSwitches = field(default_factory=SpeedSwitches)
    num_workers: int = 1
    fit: bool = True                     # allow the CPU time-budget hardware fit
    progress: bool = True
    overwrite: bool = False              # train a finished fold again from scratch (replacing its checkpoints)
    pretrained: str | None = None        # --pretrained SOURCE (segkit.training.pretrained) and its options
    pretrained_fold: str | None = None
    pretrained_checkpoint: str | None = None
    freeze_encoder: int = 0
    warmup_steps: int | None = None
    predict_validation: bool | None = None   # predict the fold's validation cases at the end (None: auto)

    @property
    def time_budget_s(self) -> float | None:
        """The budget in seconds (None without one)."""
        return self.time_budget_min * 60 if self.time_budget_min else None
