"""A fine-tuning run's schedule: pretrained weights at the start, encoder freezing, lr warm-up (docs/fine-tuning.md).

The trainer calls `FineTuning.start` once (after building the model and optimiser), then
`lr_schedule` for the learning rate of every step and `before_epoch` at each epoch. Without
--pretrained (and when resuming a run that did not fine-tune) it is inactive and the schedule
is the recipe's poly decay. The settings go into schedule.json (`fine_tuning`, `pretrained`), and
a resumed run reads them back from there, so `--resume` keeps the fine-tuning lr and warm-up.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from segkit.errors import UserError
from segkit.jsonio import read_json
from segkit.training.finetune_options import MAX_DEFAULT_WARMUP_STEPS, WARMUP_SHARE
from segkit.training.pretrained import load_pretrained, set_encoder_trainable
from segkit.training.schedule import Schedule, poly_lr
from segkit.workdir import checkpoint_path


def warmup_factor(step: int, start: int, warmup_steps: int) -> float:
    """Linear ramp from 1/warmup_steps to 1 over warmup_steps steps beginning at `start` (1 outside it)."""
    if warmup_steps <= 0 or step < start:
        return 1.0
    return min(1.0, (step - start + 1) / warmup_steps)


@dataclass
class FineTuning:
    """Fine-tuning settings of one run; inactive (`active=False`) for a run from scratch."""

    active: bool = False
    lr: float = 0.0
    lr_note: str = ""
    freeze_encoder_epochs: int = 0
    warmup_steps: int | None = None      # None: resolved from the schedule (WARMUP_SHARE of the steps)
    report: dict | None = None           # the pretrained load report (fresh runs only)

    @classmethod
    def start(cls, setup, model: torch.nn.Module, optimizer: torch.optim.Optimizer, info) -> FineTuning:
        """Load the pretrained weights (fresh run) or read the settings back (resume); inactive otherwise."""
        if setup.resume and checkpoint_path(setup.fold_dir, "latest").is_file():
            if getattr(setup, "finetune", None) is not None and info.is_main:
                print("--pretrained is not reloaded on --resume: the weights come from checkpoint_latest.pt", flush=True)
            path = setup.fold_dir / "schedule.json"
            record = read_json(path, "schedule file").get("fine_tuning") if path.is_file() else None
            return cls(True, record["lr"], record.get("lr_note", ""), record["freeze_encoder_epochs"],
                       record["warmup_steps"]) if record else cls()
        finetune = getattr(setup, "finetune", None)
        if finetune is None:
            return cls()
        if finetune.freeze_encoder_epochs and info.enabled:
            raise UserError("--freeze-encoder is single-process only (DDP fixes the trainable parameters when it "
                            "wraps the model); drop it or train without torchrun")
        report = load_pretrained(model, finetune.source, setup.plans, setup.spatial_dims)
        if info.is_main:
            print(report.summary(), flush=True)
        for group in optimizer.param_groups:
            group["lr"] = 0.0            # time-budget calibration steps must not move the pretrained weights
        return cls(True, setup.recipe.lr, finetune.lr_note, finetune.freeze_encoder_epochs, finetune.warmup_steps,
                   report.to_dict())

    def warmup_start(self, sched: Schedule) -> int:
        """Step at which the encoder starts training (and the warm-up starts)."""
        return min(self.freeze_encoder_epochs, sched.epochs) * sched.iterations_per_epoch

    def resolved_warmup(self, sched: Schedule) -> int:
        """Warm-up steps: the request, else WARMUP_SHARE of the steps after the freeze (<= MAX_DEFAULT_WARMUP_STEPS)."""
        if self.warmup_steps is None:
            self.warmup_steps = min(MAX_DEFAULT_WARMUP_STEPS,
                                    max(1, round(WARMUP_SHARE * (sched.total_steps - self.warmup_start(sched)))))
        return self.warmup_steps

    def lr_at(self, step: int, recipe_lr: float, sched: Schedule, exponent: float = 0.9) -> float:
        """Learning rate of a step: the recipe's poly decay (from the fine-tuning lr), times the warm-up ramp."""
        if not self.active:
            return poly_lr(recipe_lr, step, sched.total_steps, exponent)
        return poly_lr(self.lr, step, sched.total_steps, exponent) * warmup_factor(
            step, self.warmup_start(sched), self.resolved_warmup(sched))

    def before_epoch(self, model: torch.nn.Module, epoch: int) -> None:
        """Freeze the encoder during the first freeze_encoder_epochs epochs, train it afterwards."""
        if self.active and self.freeze_encoder_epochs:
            set_encoder_trainable(model, epoch >= self.freeze_encoder_epochs)

    def schedule_record(self, sched: Schedule) -> dict:
        """schedule.json entries: `fine_tuning` (settings) and `pretrained` (the load report)."""
        if not self.active:
            return {}
        record = {"fine_tuning": {"lr": self.lr, "lr_note": self.lr_note,
                                  "freeze_encoder_epochs": self.freeze_encoder_epochs,
                                  "warmup_steps": self.resolved_warmup(sched),
                                  "warmup_starts_at_step": self.warmup_start(sched)}}
        return record | ({"pretrained": self.report} if self.report is not None else {})
