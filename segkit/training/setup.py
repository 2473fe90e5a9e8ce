"""What one training run needs, resolved from plans.json and a TrainRequest: a plain record, no behaviour."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from segkit.plans import (
    Configuration,
    Plans,
    ignore_label_of,
    output_label_values,
    previous_stage_classes,
)
from segkit.training.loader import Case
from segkit.training.pretrained import FineTune
from segkit.training.recipe import NNUNET, Recipe
from segkit.training.speed import SpeedSwitches


@dataclass
class TrainSetup:
    """Inputs of `segkit.training.trainer.train`; every training choice lives in `recipe`."""

    fold_dir: Path
    plans: Plans
    configuration: Configuration         # the configuration's plans entry (after any hardware/memory fitting)
    train_cases: list[Case]
    val_cases: list[Case]
    device: torch.device
    recipe: Recipe = NNUNET              # resolved, with the user's overrides applied
    recipe_reason: str = ""              # why this recipe (schedule.json)
    recipe_overrides: dict = field(default_factory=dict)   # fields the user set (schedule.json)
    seed: int = 0
    time_budget_s: float | None = None
    started_at: float | None = None      # time.monotonic() at the start of the command (the budget's start)
    early_stop: int | None = None
    validate_every: int = 1
    resume: bool = False
    precision: str = "fp32"              # resolved: fp32 | bf16 | fp16 (segkit.training.precision)
    speed: SpeedSwitches = field(default_factory=SpeedSwitches)
    num_workers: int = 1
    progress: bool = True
    notes: list[str] = field(default_factory=list)
    finetune: FineTune | None = None     # --pretrained SOURCE and its options (segkit.training.pretrained)
    predict_validation: bool = False     # after training, predict the fold's validation cases (evaluation.cv_predict)

    @property
    def spatial_dims(self) -> int:
        """2 or 3."""
        return self.configuration.spatial_dims

    @property
    def use_batch_dice(self) -> bool:
        """Dice over the whole batch (nnU-Net's default for 3D) or per sample."""
        if self.recipe.batch_dice is not None:
            return self.recipe.batch_dice
        return self.configuration.batch_dice_or_default

    @property
    def in_channels(self) -> int:
        """Network input channels: the image channels, plus the previous stage's one-hot for a cascade stage."""
        return self.plans.in_channels(self.configuration.name)

    @property
    def num_outputs(self) -> int:
        """Network output channels (classes + background, or regions)."""
        return self.plans.num_outputs

    @property
    def previous_classes(self) -> list[list[int]] | None:
        """A cascade stage's one-hot channels (label values each), None for a stage without a previous one."""
        return previous_stage_classes(self.plans) if self.configuration.previous_stage else None

    @property
    def label_mode(self) -> str:
        """"softmax" or "sigmoid"."""
        return self.plans.label_mode

    @property
    def regions(self) -> list[list[int]]:
        """Label values of each output class/region, in output order."""
        return list(output_label_values(self.plans).values())

    @property
    def ignore_label(self) -> int | None:
        """Label value of unannotated voxels (sparse annotation), or None."""
        return ignore_label_of(self.plans)

    @property
    def output_names(self) -> list[str]:
        """Names of the foreground outputs, in order."""
        return list(self.plans.outputs)

    def recipe_record(self) -> dict:
        """The recipe as schedule.json records it: every field, the reason, the overridden fields."""
        return self.recipe.to_dict() | {"reason": self.recipe_reason, "overrides": dict(self.recipe_overrides)}
