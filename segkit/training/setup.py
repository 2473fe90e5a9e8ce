"""What one training run needs, resolved from plans.json and the CLI: a plain record, no behaviour."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from segkit.training.loader import Case


@dataclass
class TrainSetup:
    """Inputs of `segkit.training.trainer.train`."""

    fold_dir: Path
    plans: dict
    configuration: str
    config_entry: dict                   # the configuration's plans entry (after any hardware fitting)
    train_cases: list[Case]
    val_cases: list[Case]
    device: torch.device
    seed: int = 0
    epochs: int | None = None            # None: 1000 (or what the time budget allows)
    iterations_per_epoch: int | None = None   # None: 250 (or what the time budget allows)
    time_budget_s: float | None = None
    started_at: float | None = None      # time.monotonic() at the start of the command (the budget's start)
    early_stop: int | None = None
    validate_every: int = 1
    resume: bool = False
    precision: str = "fp32"              # resolved: fp32 | bf16 | fp16 (segkit.training.precision)
    compile: bool = False
    channels_last: bool = False
    num_workers: int = 1
    augment: str = "full"
    elastic: bool = False
    batch_dice: bool | None = None     # None: the plan's batch_dice, else True for 3D, False for 2D
    lr: float = 1e-2
    momentum: float = 0.99
    weight_decay: float = 3e-5
    grad_clip: float = 12.0
    optimizer: str = "sgd"               # "sgd" (nnU-Net) | "adamw" (short CPU budget recipe)
    foreground_fraction: float = 1 / 3   # share of each batch centred on a foreground voxel
    recipe: dict = field(default_factory=dict)   # the recipe record (segkit.training.recipe), for schedule.json
    progress: bool = True
    notes: list[str] = field(default_factory=list)

    @property
    def spatial_dims(self) -> int:
        """2 or 3."""
        return int(self.config_entry.get("spatial_dims", len(self.config_entry["patch_size"])))

    @property
    def use_batch_dice(self) -> bool:
        """Dice over the whole batch (nnU-Net's default for 3D) or per sample."""
        if self.batch_dice is not None:
            return self.batch_dice
        return bool(self.config_entry.get("batch_dice", self.spatial_dims == 3))

    @property
    def label_mode(self) -> str:
        """"softmax" or "sigmoid"."""
        return self.plans.get("label_mode", "softmax")

    @property
    def regions(self) -> list[list[int]]:
        """Label values of each output class/region, in output order."""
        return [list(v) if isinstance(v, list) else [v] for v in self.plans["outputs"].values()]

    @property
    def ignore_label(self) -> int | None:
        """Label value of unannotated voxels (sparse annotation), or None."""
        value = self.plans.get("ignore_label")
        return int(value) if value is not None else None

    @property
    def output_names(self) -> list[str]:
        """Names of the foreground outputs, in order."""
        return list(self.plans["outputs"].keys())
