"""Training recipes: nnU-Net's default, and the short CPU budget recipe the trainer picks on its own.

nnU-Net's recipe (SGD, Nesterov momentum 0.99, lr 1e-2 poly, CE + batch Dice, a third of each
batch forced to contain foreground, full augmentation) is tuned for ~250,000 steps on a GPU. A
2-core CPU gives a few hundred to a few thousand steps in minutes; with that recipe the network
sits on the all-background plateau for the whole budget (docs/benchmarks.md). The short
CPU budget recipe (device CPU and --time-budget under SHORT_BUDGET_MIN minutes) trades that for
fast early progress: AdamW lr 1e-2 (poly decay), per-sample Dice, half of each batch (not a
third) centred on a voxel of a class drawn uniformly among the classes present (class-balanced
sampling, so small structures are seen as often as big ones), light augmentation, and a
hardware fit that keeps at least 16 features in the first stage (width 8 underfitted: training
loss stalled at the validation loss). It is recorded in schedule.json.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

SHORT_BUDGET_MIN = 30.0


@dataclass(frozen=True)
class Recipe:
    """Optimiser, loss and sampling choices of one training recipe (data, not subclasses)."""

    name: str
    optimizer: str                 # "sgd" (Nesterov) | "adamw"
    lr: float
    momentum: float                # SGD momentum (ignored by AdamW, which uses betas 0.9/0.999)
    weight_decay: float
    foreground_fraction: float     # share of each batch centred on a foreground voxel
    batch_dice: bool | None        # None: the plan's / nnU-Net's default
    augment: str                   # what --augment auto resolves to
    min_width: int = 8             # CPU hardware fitting never halves the first stage's width below this

    def to_dict(self) -> dict:
        """JSON-ready record."""
        return asdict(self)


NNUNET = Recipe("nnunet", "sgd", 1e-2, 0.99, 3e-5, 1 / 3, None, "full")
SHORT_CPU = Recipe("short_cpu_budget", "adamw", 1e-2, 0.9, 1e-4, 0.5, False, "light", min_width=16)
RECIPES = {"nnunet": NNUNET, "short-cpu": SHORT_CPU}


def choose_recipe(requested: str, device_type: str, time_budget_min: float | None) -> tuple[Recipe, str]:
    """The recipe for `--recipe` (auto|nnunet|short-cpu) on this device and budget, and why."""
    if requested != "auto":
        return RECIPES[requested], f"--recipe {requested}"
    if device_type == "cpu" and time_budget_min and time_budget_min < SHORT_BUDGET_MIN:
        return SHORT_CPU, f"auto: CPU with a time budget under {SHORT_BUDGET_MIN:g} min"
    return NNUNET, "auto: GPU or no/long time budget"


def build_optimizer(params, name: str, lr: float, momentum: float, weight_decay: float) -> torch.optim.Optimizer:
    """SGD with Nesterov momentum (nnU-Net) or AdamW."""
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=True)
    raise ValueError(f"unknown optimizer {name!r}")
