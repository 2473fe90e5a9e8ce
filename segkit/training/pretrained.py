"""Start a training run from another model's weights (`segkit train --pretrained SOURCE`).

SOURCE is a checkpoint file (`fold_<k>/checkpoint_<kind>.pt`), or what `segkit.models.resolve`
resolves: a model folder (`WORK/models/<config>`, or a work dir) with `--pretrained-fold`, an
nnU-Net v2 model folder, or a model package `.zip`, whose checksums are verified first (a
tampered package is refused).

Rules (docs/fine-tuning.md):
- every tensor whose name and shape match is loaded; a name the network lacks is "unused",
  one whose shape differs is "skipped" (keeps its fresh initialisation);
- the output heads (`heads.*`) are re-initialised when the label set differs (label mode or
  the outputs' names and label values), and loaded when it is the same;
- the first convolution's input channels are mapped by channel name (case-insensitive) where
  names match; every other target channel gets the mean over the source's channels. An
  instance norm follows that convolution in every family, so its scale does not matter.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from segkit.errors import UserError
from segkit.models import checkpoint as ckpt
from segkit.models.choice import ModelChoice
from segkit.models.folder import find_folds
from segkit.models.nnunet import is_nnunet_model_folder
from segkit.models.resolve import resolve_model
from segkit.models.unpack import is_model_package
from segkit.plans import Plans, channel_names_of, head_meaning_of, read_plans
from segkit.training.finetune_options import FINETUNE_LR_FACTOR
from segkit.training.recipe import Recipe
from segkit.workdir import is_work_dir, plans_path

HEAD_PREFIX = "heads."
ENCODER_PREFIX = "encoder."


@dataclass(frozen=True)
class PretrainedSource:
    """A resolved SOURCE: the checkpoint to read and the source model's plans (when known)."""

    checkpoint: Path
    plans: Plans | None
    description: str


@dataclass(frozen=True)
class FineTune:
    """How a run fine-tunes: the source and the schedule options (None: no fine-tuning)."""

    source: PretrainedSource
    freeze_encoder_epochs: int = 0
    warmup_steps: int | None = None   # None: WARMUP_SHARE of the run's steps
    lr_note: str = ""


def _plans_near(checkpoint: Path) -> Plans | None:
    """The model folder's plans.json of a `fold_<k>/checkpoint_*.pt`, when there is one."""
    path = plans_path(checkpoint.parent.parent)
    return read_plans(path) if path.is_file() else None


def _from_choice(choice: ModelChoice, name: str, fold: str | None, kind: str, label: str) -> PretrainedSource:
    """The chosen fold's checkpoint of one configuration of a resolved model."""
    model_dir = choice.model_dirs[name]
    found = find_folds(model_dir, [fold] if fold is not None else None, kind)
    chosen_fold, path = found[0]
    note = "" if fold is not None or len(found) == 1 else f" (first of folds {[f for f, _ in found]}; --pretrained-fold)"
    return PretrainedSource(path, read_plans(plans_path(model_dir)),
                            f"{label}: configuration {name}, fold {chosen_fold}, checkpoint {kind}{note}")


def resolve_source(spec: str, configuration: str | None = None, fold: str | None = None,
                   kind: str | None = None) -> PretrainedSource:
    """Resolve SOURCE (checkpoint, model folder, work dir, package or nnU-Net folder) to a checkpoint path and its plans."""
    path = Path(spec)
    if is_model_package(path):
        choice = resolve_model(path, decide=False)    # verifies every member's checksum first
        name = configuration if configuration in choice.model_dirs else next(iter(choice.model_dirs))
        folds = choice.folds.get(name) or []
        return _from_choice(choice, name, fold or (folds[0] if folds else None), kind or choice.checkpoint or "final",
                            f"package {path}, configuration {name} (checksums verified)")
    if path.is_dir():
        # a work dir gives the configuration being trained; a model folder (or nnU-Net folder) is its own
        choice = resolve_model(path, configuration if is_work_dir(path) else None, kind or "final", decide=False)
        label = "nnU-Net model folder" if is_nnunet_model_folder(path) else "model folder"
        return _from_choice(choice, next(iter(choice.model_dirs)), fold, kind or "final", f"{label} {path}")
    if path.is_file():
        return PretrainedSource(path, _plans_near(path), f"checkpoint {path}")
    raise UserError("pretrained source not found: give a checkpoint .pt, a model folder or a model package .zip", path)


def finetune_from_args(args, configuration: str) -> FineTune | None:
    """The FineTune of a `segkit train` invocation (parsed arguments or a TrainRequest), or None without --pretrained."""
    spec = getattr(args, "pretrained", None)
    freeze, warmup = getattr(args, "freeze_encoder", 0) or 0, getattr(args, "warmup_steps", None)
    if freeze < 0 or (warmup is not None and warmup < 0):
        raise UserError("--freeze-encoder and --warmup-steps must not be negative")
    if not spec:
        if freeze or warmup is not None or getattr(args, "pretrained_fold", None):
            raise UserError("--freeze-encoder, --warmup-steps and --pretrained-fold need --pretrained SOURCE")
        return None
    source = resolve_source(spec, configuration, getattr(args, "pretrained_fold", None),
                            getattr(args, "pretrained_checkpoint", None))
    return FineTune(source, freeze, warmup)


def finetune_recipe(recipe: Recipe, overrides: dict, finetune: FineTune | None) -> tuple[Recipe, str]:
    """The recipe with the fine-tuning lr (recipe lr x FINETUNE_LR_FACTOR unless the user set lr), and a note."""
    if "lr" in overrides:
        return recipe, f"lr {recipe.lr:g} (--recipe-set)"
    if finetune is not None:
        tuned = recipe.override({"lr": recipe.lr * FINETUNE_LR_FACTOR})
        return tuned, f"lr {tuned.lr:g} (fine-tuning: recipe lr {recipe.lr:g} x {FINETUNE_LR_FACTOR:g})"
    return recipe, f"lr {recipe.lr:g} (recipe)"


def labels_match(source_plans: Plans | None, target_plans: Plans) -> bool:
    """True when both plans have the same label mode and outputs (names and label values, in order)."""
    return source_plans is not None and head_meaning_of(source_plans) == head_meaning_of(target_plans)


def input_conv_key(state: dict[str, torch.Tensor], spatial_dims: int) -> str | None:
    """Name of the first convolution weight (the one that sees the image channels)."""
    return next((k for k, v in state.items() if v.ndim == spatial_dims + 2), None)


def map_input_channels(weight: torch.Tensor, source_names: list[str] | None, target_names: list[str] | None,
                       target_channels: int) -> tuple[torch.Tensor, list[str]]:
    """First-conv weight for the target channels: by name where names match, else the mean over source channels."""
    named_sources = source_names or []
    source_index = {n.strip().lower(): i for i, n in enumerate(named_sources)}
    if source_names is None or target_names is None:
        if weight.shape[1] == target_channels:   # unnamed but same count: keep the order
            return weight.clone(), [f"channel {i} (same position, names unknown)" for i in range(target_channels)]
        target_names = [f"channel {i}" for i in range(target_channels)]
    mean = weight.mean(dim=1)
    columns, notes = [], []
    for name in target_names:
        index = source_index.get(name.strip().lower())
        if index is not None:
            columns.append(weight[:, index])
            notes.append(f"{name} <- {named_sources[index]}")
        else:
            columns.append(mean)
            notes.append(f"{name} <- mean of {weight.shape[1]} source channels")
    return torch.stack(columns, dim=1).contiguous(), notes


@dataclass
class LoadReport:
    """What happened to each tensor of the network."""

    source: str
    loaded: list[str] = field(default_factory=list)
    reinitialised: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)     # name -> why
    missing: list[str] = field(default_factory=list)          # not in the source: fresh initialisation
    unused: list[str] = field(default_factory=list)           # in the source, not in this network
    channel_map: list[str] = field(default_factory=list)
    label_set: str = ""
    loaded_parameters: int = 0
    total_parameters: int = 0

    def to_dict(self) -> dict:
        """JSON-ready record (schedule.json's `pretrained`)."""
        return {"source": self.source, "label_set": self.label_set, "loaded_tensors": len(self.loaded),
                "loaded_parameters": self.loaded_parameters, "total_parameters": self.total_parameters,
                "loaded": self.loaded, "reinitialised": self.reinitialised, "skipped": self.skipped,
                "missing": self.missing, "unused": self.unused, "channel_map": self.channel_map}

    def summary(self) -> str:
        """One paragraph for the console."""
        share = self.loaded_parameters / max(self.total_parameters, 1)
        lines = [f"pretrained: {self.source}",
                 f"  loaded {len(self.loaded)} tensors ({share:.1%} of the parameters); label set {self.label_set}",
                 f"  re-initialised {len(self.reinitialised)}: {', '.join(self.reinitialised) or '-'}",
                 f"  skipped {len(self.skipped)} (shape differs), missing {len(self.missing)}, unused {len(self.unused)}"]
        if share < 0.5:
            lines.append("  WARNING: under half of the network comes from the source; plan with "
                         "`segkit plan DATASET --like SOURCE` to adopt its architecture")
        if self.channel_map:
            lines.append(f"  input channels: {'; '.join(self.channel_map)}")
        return "\n".join(lines)


def load_pretrained(model: torch.nn.Module, source: PretrainedSource, target_plans: Plans, spatial_dims: int) -> LoadReport:
    """Copy the source's matching weights into model (see the module docstring); returns the report."""
    payload = ckpt.load_checkpoint(source.checkpoint)
    theirs: dict[str, torch.Tensor] = payload["network_state"]
    ours = model.state_dict()
    same_labels = labels_match(source.plans, target_plans)
    report = LoadReport(source.description, label_set="same (heads loaded)" if same_labels else
                        "differs (heads re-initialised)" if source.plans else "unknown: no plans.json beside the "
                        "checkpoint (heads re-initialised)")
    first_conv = input_conv_key(ours, spatial_dims)
    source_names = channel_names_of(source.plans) if source.plans else None
    target_names = channel_names_of(target_plans)
    new_state = {}
    for name, tensor in ours.items():
        if name.startswith(HEAD_PREFIX) and not same_labels:
            report.reinitialised.append(name)
        elif name not in theirs:
            report.missing.append(name)
        elif name == first_conv and theirs[name].shape[:1] + theirs[name].shape[2:] == tensor.shape[:1] + tensor.shape[2:] \
                and (theirs[name].shape != tensor.shape or source_names != target_names):
            new_state[name], report.channel_map = map_input_channels(theirs[name], source_names, target_names,
                                                                     tensor.shape[1])
            report.loaded.append(name)
        elif theirs[name].shape == tensor.shape:
            new_state[name] = theirs[name]
            report.loaded.append(name)
        else:
            report.skipped[name] = f"shape {list(theirs[name].shape)} in the source, {list(tensor.shape)} here"
    report.unused = [name for name in theirs if name not in ours]
    if not any(ours[k].ndim > 1 for k in report.loaded):   # a matching bias or norm alone transfers nothing
        raise UserError("no weight of the pretrained model matches this network's names and shapes; plan with "
                        "`segkit plan DATASET --like SOURCE` to adopt its architecture", source.checkpoint)
    model.load_state_dict({k: v.to(ours[k].dtype) for k, v in new_state.items()}, strict=False)
    report.loaded_parameters = sum(ours[k].numel() for k in report.loaded)
    report.total_parameters = sum(v.numel() for v in ours.values())
    return report


def set_encoder_trainable(model: torch.nn.Module, trainable: bool) -> int:
    """Freeze or unfreeze the encoder's parameters; returns how many tensors changed."""
    changed = 0
    for name, parameter in model.named_parameters():
        if name.startswith(ENCODER_PREFIX) and parameter.requires_grad != trainable:
            parameter.requires_grad_(trainable)
            changed += 1
    return changed
