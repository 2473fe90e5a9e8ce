"""Training recipes: the single record of training choices (optimiser, lr schedule, loss, grad clip,
epochs, augmentation, sampling), nnU-Net's default and the short CPU budget recipe.

nnU-Net's recipe (SGD, Nesterov momentum 0.99, lr 1e-2 poly, CE + batch Dice, a third of each
batch forced to contain foreground, full augmentation) is tuned for ~250,000 steps on a GPU. A
2-core CPU gives a few hundred to a few thousand steps in minutes; with that recipe the network
sits on the all-background plateau for the whole budget (docs/benchmarks.md). The short
CPU budget recipe (device CPU and --time-budget under SHORT_BUDGET_MIN minutes) trades that for
fast early progress: AdamW lr 1e-2 (poly decay), per-sample Dice, half of each batch (not a
third) centred on a voxel of a class drawn uniformly among the classes present (class-balanced
sampling, so small structures are seen as often as big ones; every patch on foreground found the
smallest structures sooner on real images but over-segmented the brain-structures phantom), light
augmentation, mirroring only across the body's plane of symmetry (segkit.planning.mirroring), and
a hardware fit that keeps at least 16 features in the first stage (width 8 underfitted: training
loss stalled at the validation loss).

Every field can be overridden one by one (`Recipe.override`, `segkit train --recipe-set FIELD=VALUE`
and the dedicated flags); the resolved recipe, its reason and the overridden fields are written
to schedule.json.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import torch

from segkit.errors import UserError

SHORT_BUDGET_MIN = 30.0
OPTIMIZERS = ("sgd", "adamw")
LR_SCHEDULES = ("poly",)
LOSSES = ("dice_ce",)                    # CE (softmax) or BCE (sigmoid regions) + soft Dice, deep supervision
AUGMENTATIONS = ("full", "fast", "light", "none")
MIRRORINGS = ("planned", "anatomical")   # segkit.planning.mirroring


@dataclass(frozen=True)
class Recipe:
    """Every training choice of one recipe (data, not subclasses)."""

    name: str
    optimizer: str                 # "sgd" (Nesterov) | "adamw"
    lr: float
    momentum: float                # SGD momentum (ignored by AdamW, which uses betas 0.9/0.999)
    weight_decay: float
    foreground_fraction: float     # share of each batch centred on a foreground voxel
    batch_dice: bool | None        # None: the plan's / nnU-Net's default
    augment: str                   # augmentation level: full | fast | light | none
    min_width: int = 8             # CPU hardware fitting never halves the first stage's width below this
    lr_schedule: str = "poly"      # lr = lr * (1 - step / total_steps) ** lr_exponent, per step
    lr_exponent: float = 0.9
    loss: str = "dice_ce"
    grad_clip: float = 12.0        # gradient-norm clip
    epochs: int = 1000             # the most a time budget may fit
    iterations_per_epoch: int = 250
    elastic: bool = False          # elastic deformation in the spatial transform
    mirroring: str = "planned"     # planned: the plan's mirror_axes (nnU-Net's); anatomical: left/right only
    # lateralised labels: mirror left/right with the plan's mirror_pairs swapped (planning/mirroring). Off by
    # default: one seed of the lateralised real-brain benchmark gave 0.750 with it vs 0.757 without (600 steps)
    swap_pairs: bool = False

    def to_dict(self) -> dict:
        """JSON-ready record."""
        return asdict(self)

    def override(self, changes: Mapping[str, Any]) -> Recipe:
        """This recipe with the given fields replaced (None values skipped), checked."""
        changes = {k: v for k, v in changes.items() if v is not None}
        unknown = sorted(set(changes) - set(FIELD_TYPES))
        if unknown:
            raise UserError(f"unknown recipe field(s) {unknown}; fields: {', '.join(FIELD_TYPES)}")
        recipe = dataclasses.replace(self, **changes)
        recipe.check()
        return recipe

    def check(self) -> None:
        """UserError for a value no trainer supports."""
        choices = {"optimizer": OPTIMIZERS, "lr_schedule": LR_SCHEDULES, "loss": LOSSES, "augment": AUGMENTATIONS,
                   "mirroring": MIRRORINGS}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise UserError(f"recipe {name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}")
        if self.epochs < 1 or self.iterations_per_epoch < 1:
            raise UserError("--epochs and --iterations-per-epoch must be at least 1")
        if self.lr <= 0 or self.grad_clip <= 0 or not 0 <= self.foreground_fraction <= 1:
            raise UserError("recipe lr and grad_clip must be positive and foreground_fraction within 0..1")


FIELD_TYPES = {f.name: f.type for f in dataclasses.fields(Recipe) if f.name != "name"}

NNUNET = Recipe("nnunet", "sgd", 1e-2, 0.99, 3e-5, 1 / 3, None, "full")
SHORT_CPU = Recipe("short_cpu_budget", "adamw", 1e-2, 0.9, 1e-4, 0.5, False, "light", min_width=16,
                   mirroring="anatomical")
RECIPES = {"nnunet": NNUNET, "short-cpu": SHORT_CPU}


def choose_recipe(requested: str, device_type: str, time_budget_min: float | None) -> tuple[Recipe, str]:
    """The recipe for `--recipe` (auto|nnunet|short-cpu) on this device and budget, and why."""
    if requested != "auto":
        return RECIPES[requested], f"--recipe {requested}"
    if device_type == "cpu" and time_budget_min and time_budget_min < SHORT_BUDGET_MIN:
        return SHORT_CPU, f"auto: CPU with a time budget under {SHORT_BUDGET_MIN:g} min"
    return NNUNET, "auto: GPU or no/long time budget"


def _parse_value(field: str, text: str) -> Any:
    """A `--recipe-set` value converted to the field's type."""
    kind = FIELD_TYPES[field]
    lowered = text.strip().lower()
    if "bool" in kind:
        if lowered in ("none", "null", "auto") and "None" in kind:
            return None
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise UserError(f"--recipe-set {field}: expected true/false, got {text!r}")
    try:
        return int(text) if kind == "int" else float(text) if kind == "float" else text.strip()
    except ValueError:
        raise UserError(f"--recipe-set {field}: expected a {kind}, got {text!r}") from None


def parse_overrides(items: list[str] | None) -> dict[str, Any]:
    """`FIELD=VALUE` strings -> typed recipe overrides (UserError for an unknown field or bad value)."""
    changes: dict[str, Any] = {}
    for item in items or []:
        field, sep, value = item.partition("=")
        field = field.strip().replace("-", "_")
        if not sep or field not in FIELD_TYPES:
            raise UserError(f"--recipe-set takes FIELD=VALUE with FIELD one of {', '.join(FIELD_TYPES)}; got {item!r}")
        changes[field] = _parse_value(field, value)
    return changes


def build_optimizer(params, name: str, lr: float, momentum: float, weight_decay: float) -> torch.optim.Optimizer:
    """SGD with Nesterov momentum (nnU-Net) or AdamW."""
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=True)
    raise ValueError(f"unknown optimizer {name!r}")
