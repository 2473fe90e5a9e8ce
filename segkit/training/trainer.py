"""The training loop: set up, then per epoch (steps, validation, end of epoch), then finish.

`train()` reads as those phases; the pieces it calls are below it. The time budget is an object
(`segkit.training.budget`: TimeBudget or NoBudget) so the loop has no budget branches; every
training choice comes from the setup's Recipe; speed switches from its SpeedSwitches.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field

import numpy as np
import torch

from segkit import oom, workdir
from segkit.console import progress_bar, say
from segkit.jsonio import read_json, write_json
from segkit.models import checkpoint as ckpt
from segkit.networks import build_network
from segkit.planning.mirroring import training_swap
from segkit.training import distributed as dd
from segkit.training import speed
from segkit.training.augmentation import build_transform, sample_size_for
from segkit.training.budget import NoBudget, TimeBudget, make_budget
from segkit.training.extension import extend_schedule, record_extension
from segkit.training.finetuning import FineTuning
from segkit.training.loader import EpochBatches, PatchSampler, epoch_loader
from segkit.training.losses import build_loss
from segkit.training.precision import make_autocast
from segkit.training.recipe import build_optimizer
from segkit.training.records import (
    append_log,
    peak_memory_bytes,
    plot_progress,
    preload_plotting,
    read_log,
    write_log,
)
from segkit.training.schedule import Schedule
from segkit.training.setup import TrainSetup
from segkit.training.targets import SegToTarget
from segkit.training.validation import dice_from_counts, estimate_validation_seconds, sampled_cases, validate

# progress.png is redrawn at most this often (and after the last epoch): drawing costs ~0.25 s of
# CPU, which an 8-minute budget of ~30-s epochs would otherwise pay every epoch (#27)
PROGRESS_EVERY_S = 60.0

CALIBRATION_EPOCH = 1_000_000        # batch-stream ids of the timing steps (never a real epoch)


@dataclass
class RunState:
    """Where the run stands (everything resume needs besides weights and optimizer)."""

    epoch: int = 0                       # next epoch to run
    step: int = 0                        # optimiser steps done
    best_dice: float = -1.0
    stale: int = 0                       # validations since the best one
    schedule: Schedule | None = None
    epoch_seconds: list[float] = field(default_factory=list)
    step_seconds: float = 0.0            # wall seconds inside optimiser steps (the budget's step share)
    step_seconds_before: float = 0.0     # of those, spent by earlier commands (a resumed run): not this command's share
    stopped_by: str = "epochs"           # why the loop ended: epochs, time_budget or early_stopping
    plotted_at: float | None = None      # time.monotonic() of the last progress.png (not saved: a resume redraws)


@dataclass
class Run:
    """The live parts of one training run, built once by set_up."""

    setup: TrainSetup
    info: dd.DistInfo
    budget: TimeBudget | NoBudget
    model: torch.nn.Module               # the plain module: checkpoints and validation
    net: torch.nn.Module                 # what steps call: DDP-wrapped and/or compiled
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler | None
    autocast: Callable[[], AbstractContextManager]
    loss_fn: Callable
    val_loss_fn: Callable
    sampler: PatchSampler
    transform: Callable[..., dict]
    to_target: SegToTarget
    val_cases: list
    patch: list[int]
    state: RunState
    tuning: FineTuning                   # --pretrained: weights loaded, lr warm-up, encoder freezing (inactive otherwise)


def train(setup: TrainSetup, info: dd.DistInfo | None = None) -> dict:
    """Train one fold; returns the final record (epochs run, best Dice, schedule)."""
    run = set_up(setup, info or dd.DistInfo())
    schedule = decide_schedule(run)
    stopped = False
    while run.state.epoch < schedule.epochs and not stopped:
        epoch_start = time.monotonic()
        run.tuning.before_epoch(run.model, run.state.epoch)
        losses = run_steps(run, run.state.epoch, schedule.iterations_in(run.state.epoch), schedule)
        record = {"epoch": run.state.epoch, "train_loss": float(dd.all_reduce_mean(float(np.mean(losses)), run.info)),
                  "lr": run.optimizer.param_groups[0]["lr"], "step": run.state.step}
        improved = False
        if schedule.validates_after(run.state.epoch):
            record |= run_validation(run)
            improved = update_best(run.state, record["val_mean_dice"])
        stopped = end_epoch(run, schedule, record, improved, epoch_start, len(losses))
    return finish(run, schedule, stopped)


def set_up(setup: TrainSetup, info: dd.DistInfo) -> Run:
    """Seeded network, optimiser, loss, sampler and transform; the saved state when resuming."""
    np.random.seed(setup.seed)
    torch.manual_seed(setup.seed)        # identical initial weights on every rank
    plans, entry, device, recipe = setup.plans, setup.configuration, setup.device, setup.recipe
    patch = list(entry.patch_size)
    model = build_network(entry.architecture.as_dict(), setup.in_channels, setup.num_outputs).to(device)
    model = speed.apply_to_model(model, setup.speed, setup.spatial_dims, device)
    ds_scales = deep_supervision_scales(model, setup.in_channels, patch, device)
    optimizer = build_optimizer(model.parameters(), recipe.optimizer, recipe.lr, recipe.momentum, recipe.weight_decay)
    tuning = FineTuning.start(setup, model, optimizer, info)   # pretrained weights, or a resumed run's settings
    autocast, scaler = make_autocast(device, setup.precision)
    state = RunState()
    if setup.resume and workdir.checkpoint_path(setup.fold_dir, "latest").is_file():
        _restore(setup, model, optimizer, scaler, state)
    elif info.is_main:
        write_log(setup.fold_dir / "log.jsonl", [])
    if info.is_main:
        preload_plotting()   # matplotlib's import lands in the start-up the budget's fit sees, not after the deadline
    net = speed.compile_network(dd.wrap_model(model, info, device), setup.speed)
    batch_size = dd.per_rank_batch_size(entry.batch_size, info)
    sampler = PatchSampler(setup.train_cases, sample_size_for(patch, recipe.augment), batch_size, setup.spatial_dims,
                           recipe.foreground_fraction, patch)
    transform = build_transform(patch, entry.mirror_axes, ds_scales, setup.label_mode, setup.regions,
                                recipe.augment, recipe.elastic, setup.ignore_label, setup.previous_classes,
                                training_swap(plans, entry))
    return Run(setup=setup, info=info, budget=make_budget(setup.time_budget_s, setup.started_at), model=model,
               net=net, optimizer=optimizer, scaler=scaler, autocast=autocast,
               loss_fn=build_loss(setup.label_mode, ds_scales, setup.use_batch_dice),
               val_loss_fn=build_loss(setup.label_mode, 1, setup.use_batch_dice), sampler=sampler,
               transform=transform, to_target=SegToTarget(setup.label_mode, setup.regions, setup.ignore_label),
               val_cases=setup.val_cases[info.rank::info.world_size], patch=patch, state=state, tuning=tuning)


def decide_schedule(run: Run) -> Schedule:
    """The saved schedule when resuming (extended by the request), else the budget's (timed or the recipe's), recorded."""
    state, setup, info = run.state, run.setup, run.info
    if state.schedule is not None:
        change = extend_schedule(state.schedule, state.epoch, setup.recipe_overrides.get("epochs"),
                                 setup.time_budget_s - run.budget.elapsed() if setup.time_budget_s else None,
                                 state.epoch_seconds)
        state.schedule.epochs = dd.broadcast_ints([state.schedule.epochs], info)[0]
        if change and info.is_main:
            print(f"resume: {change}", flush=True)
            record_extension(setup.fold_dir, state.schedule, change, state.epoch)
        return state.schedule
    calibration_from = run.budget.elapsed()
    schedule = run.budget.calibrate(lambda count: _time_steps(run, count), lambda: estimate_validation_seconds(
        run.model, run.val_cases, run.patch, setup.spatial_dims, setup.in_channels, setup.device,
        run.autocast), setup.recipe, setup.validate_every, info, lambda: state.step_seconds)
    state.schedule = schedule
    if info.is_main:
        fit = setup.configuration.memory_fit
        extra = {"memory_fit": dict(fit)} if fit is not None else {}
        write_json(setup.fold_dir / "schedule.json", schedule.to_dict() | {
            "decided_at_s": round(run.budget.elapsed(), 2), "calibration_from_s": round(calibration_from, 2),
            "calibration_step_s": round(state.step_seconds - state.step_seconds_before, 2),
            "notes": setup.notes, "world_size": info.world_size,
            "batch_size_per_rank": run.sampler.batch_size, "patch_size": run.patch, "recipe": setup.recipe_record(),
            "precision": setup.precision, "speed": setup.speed.to_dict()} | extra | run.tuning.schedule_record(schedule))
    return schedule


def run_steps(run: Run, epoch: int, count: int, schedule: Schedule | None = None,
              step_ends: list[float] | None = None) -> list[float]:
    """Run `count` steps of an epoch's batch stream; returns the losses (step_ends gets the clock after each).

    With a schedule (real epochs) the lr follows the recipe's poly decay, the step counter advances
    and the budget may stop the epoch early; without one (calibration) nothing but the weights moves.
    """
    setup, info, device = run.setup, run.info, run.setup.device
    loader = epoch_loader(EpochBatches(run.sampler, run.transform, setup.seed, epoch, info.rank, count),
                          setup.num_workers, pin_memory=device.type == "cuda")
    # the bar's text stays fixed while the budget refits the epoch count (no "4 -> 3 -> 4" flicker)
    bar = f"epoch {epoch + 1}" if schedule else None
    show = None if (setup.progress and info.is_main and bar) else False
    losses: list[float] = []
    with progress_bar(loader, total=count, desc=bar, show=show, leave=False, mininterval=2.0) as batches:
        for batch in batches:
            if _step(run, batch, schedule, step_ends, losses):
                break
    return losses


def _step(run: Run, batch: dict, schedule: Schedule | None, step_ends: list[float] | None, losses: list[float]) -> bool:
    """One step of run_steps (lr, optimiser step, clocks); True when the budget says stop."""
    setup, info, device, state = run.setup, run.info, run.setup.device, run.state
    if schedule is not None:
        lr = run.tuning.lr_at(state.step, setup.recipe.lr, schedule, setup.recipe.lr_exponent)
        for group in run.optimizer.param_groups:
            group["lr"] = lr
    data, targets = to_device(batch, device, setup.speed.channels_last)
    step_start = time.monotonic()
    losses.append(train_step(run.net, data, targets, run.loss_fn, run.optimizer, run.scaler, run.autocast,
                             setup.recipe.grad_clip))
    state.step_seconds += time.monotonic() - step_start     # the budget's step share (calibration included)
    if step_ends is not None:
        step_ends.append(time.monotonic())
    if schedule is not None:
        state.step += 1
        return run.budget.stop_stepping(schedule, info)
    return False


def _time_steps(run: Run, count: int) -> list[float]:
    """Run `count` calibration steps (not part of any epoch); the clock after each."""
    step_ends: list[float] = []
    run_steps(run, CALIBRATION_EPOCH, count, step_ends=step_ends)
    return step_ends


def run_validation(run: Run) -> dict:
    """Validation of this rank's share (whole cases, or the schedule's sampled regions), summed over ranks."""
    setup = run.setup
    started = time.monotonic()
    fraction = run.state.schedule.validation_fraction if run.state.schedule else 1.0
    cases = sampled_cases(run.val_cases, run.patch, fraction, setup.seed) if fraction < 1 else run.val_cases
    counts = validate(run.model, cases, run.patch, setup.spatial_dims, setup.num_outputs,
                      setup.label_mode, lambda seg: run.to_target(seg=seg)["target"], run.val_loss_fn, setup.device,
                      setup.precision)
    # sampled regions lie around the structures and overstate the whole-case Dice: say which it was
    scope = {"val_scope": "sampled", "val_fraction": round(fraction, 4)} if fraction < 1 else {"val_scope": "full"}
    summary = _validation_summary(setup, counts, run.info) | scope
    seconds = time.monotonic() - started
    run.budget.note_validation(seconds)      # the budget's deadline keeps the measured time, not the estimate
    return summary | {"val_time_s": round(seconds, 3)}


def update_best(state: RunState, mean_dice: float | None) -> bool:
    """Track the best validation Dice and the validations since it; True when this one is better."""
    mean_dice = mean_dice if mean_dice is not None else 0.0
    improved = mean_dice > state.best_dice
    state.best_dice, state.stale = (mean_dice, 0) if improved else (state.best_dice, state.stale + 1)
    return improved


def end_epoch(run: Run, schedule: Schedule, record: dict, improved: bool, epoch_start: float, steps_run: int) -> bool:
    """Time the epoch, refit the schedule to the budget, decide on stopping (rank 0 for all), save; True = stop.

    The last epoch is always validated: when the refit or the budget cut makes this epoch the last
    after its validation was decided against, it is validated here.
    """
    state, setup, info = run.state, run.setup, run.info
    planned_steps = schedule.iterations_in(state.epoch)
    state.epoch += 1
    state.epoch_seconds.append(time.monotonic() - epoch_start)
    record |= {"epoch_time_s": round(state.epoch_seconds[-1], 3), "elapsed_s": round(run.budget.elapsed(), 1),
               "peak_memory_bytes": peak_memory_bytes(setup.device), **oom.device_peaks(setup.device)}
    change = run.budget.after_epoch(schedule, state.epoch, state.epoch_seconds, setup.recipe.epochs)
    if change:
        record["schedule_change"] = change
    stop = bool(setup.early_stop and state.stale >= setup.early_stop)
    if stop:
        state.stopped_by = "early_stopping"
    if steps_run < planned_steps:
        record["budget_cut"] = f"time budget reached after {steps_run} steps of this epoch"
        stop, state.stopped_by = True, "time_budget"
    schedule.epochs, final_steps, stop_all = dd.broadcast_ints(
        [schedule.epochs, schedule.final_epoch_iterations or 0, int(stop)], info)
    schedule.final_epoch_iterations = final_steps or None
    if (stop_all or state.epoch >= schedule.epochs) and "val_mean_dice" not in record:
        # after epoch_time_s was taken: its time is the record's val_time_s (the budget's training share adds it)
        record |= run_validation(run) | {"val_after_epoch_time": True}
        improved = update_best(state, record["val_mean_dice"])
    if info.is_main:
        saving = time.monotonic()
        last = bool(stop_all) or state.epoch >= schedule.epochs
        plot = last or state.plotted_at is None or saving - state.plotted_at >= PROGRESS_EVERY_S
        _save_epoch(setup, run.model, run.optimizer, run.scaler, state, record, improved, plot)
        if plot:
            state.plotted_at = time.monotonic()
        run.budget.note_bookkeeping(time.monotonic() - saving)
        if setup.progress:
            say(epoch_line(record, schedule.epochs, steps_run))
    dd.barrier(info)
    return bool(stop_all)


def epoch_line(record: dict, epochs: int, steps_run: int) -> str:
    """The one console line per epoch: loss, validation Dice (sampled or full), epoch time and steps/s."""
    seconds = float(record["epoch_time_s"])
    dice = record.get("val_mean_dice")
    if "val_scope" not in record:
        validation = "not validated this epoch"
    elif record["val_scope"] == "sampled":
        shown = f"{dice:.4f}" if dice is not None else "n/a"
        validation = f"val Dice {shown} (sampled: {record['val_fraction']:.0%} of each case, near the structures)"
    else:
        validation = f"val Dice {dice:.4f} (full cases)" if dice is not None else "val Dice n/a (full cases)"
    return (f"epoch {record['epoch'] + 1}/{epochs}: loss {record['train_loss']:.4f}, {validation}, "
            f"{seconds:.1f} s, {steps_run / max(seconds, 1e-9):.2f} steps/s")


def finish(run: Run, schedule: Schedule, stopped_early: bool) -> dict:
    """Rank 0 writes checkpoint_final.pt and the final schedule; returns the final record."""
    state, setup = run.state, run.setup
    fraction = schedule.validation_fraction
    if state.stopped_by == "epochs" and isinstance(run.budget, TimeBudget) and schedule.epochs < setup.recipe.epochs:
        state.stopped_by = "time_budget"     # the budget decided the epoch count (and may have cut the last one)
    final = {"epochs_run": state.epoch, "steps": state.step, "best_val_mean_dice": state.best_dice,
             # stopped_early is early stopping only; a budget cut or refit is stopped_by "time_budget"
             "stopped_early": stopped_early and state.stopped_by == "early_stopping", "stopped_by": state.stopped_by,
             "validation": {"scope": "sampled", "fraction": round(fraction, 4)} if fraction < 1 else {"scope": "full"},
             "elapsed_s": round(run.budget.elapsed(), 1),
             "step_seconds": round(state.step_seconds, 1)} | run.budget.final_record(
                 state.step_seconds - state.step_seconds_before)
    if run.info.is_main:
        saving = time.monotonic()
        ckpt.save_checkpoint(workdir.checkpoint_path(setup.fold_dir, "final"),
                             _checkpoint_payload(setup, run.model, run.optimizer, run.scaler, state) | {"final": final})
        decided = read_json(setup.fold_dir / "schedule.json", "schedule file")
        # the tail the end reserve holds: what the final save took, and when the trainer was done
        tail = {"final_save_s": round(time.monotonic() - saving, 3), "finished_at_s": round(run.budget.elapsed(), 2)}
        write_json(setup.fold_dir / "schedule.json", decided | schedule.to_dict() | {"final": final | tail})
    dd.barrier(run.info)
    return final


def to_device(batch: dict, device: torch.device, channels_last: bool) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Move a loader batch to the device (data in channels_last when asked)."""
    data = torch.as_tensor(batch["data"]).to(device, non_blocking=True)
    if channels_last:
        data = data.contiguous(memory_format=torch.channels_last_3d if data.ndim == 5 else torch.channels_last)
    targets = [torch.as_tensor(t).to(device, non_blocking=True) for t in batch["target"]]
    return data, targets


def train_step(model: torch.nn.Module, data: torch.Tensor, targets: list[torch.Tensor], loss_fn, optimizer,
               scaler, autocast, grad_clip: float) -> float:
    """One optimiser step; returns the loss."""
    optimizer.zero_grad(set_to_none=True)
    with autocast():
        outputs = model(data)
    loss = loss_fn(outputs, targets)
    if scaler is not None:
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        scaler.step(optimizer)
        scaler.update()
    else:
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()
    return float(loss.detach())


@torch.no_grad()
def deep_supervision_scales(model: torch.nn.Module, in_channels: int, patch: list[int], device: torch.device) -> list[list[int]]:
    """Downsampling factor of every network output relative to the patch, measured with one forward pass."""
    was_training = model.training
    model.eval()
    outputs = model(torch.zeros((1, in_channels, *patch), device=device))
    model.train(was_training)
    outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
    return [[p // s for p, s in zip(patch, o.shape[2:])] for o in outputs]


def _checkpoint_payload(setup: TrainSetup, model, optimizer, scaler, state: RunState) -> dict:
    """Everything a checkpoint holds (tensors and primitives only)."""
    return {
        "format": ckpt.FORMAT, "network_state": model.state_dict(),
        "architecture": setup.configuration.architecture.as_dict(), "in_channels": setup.in_channels,
        "num_outputs": setup.num_outputs, "configuration": setup.configuration.name,
        "plans_sha256": setup.configuration.sha256(), "epoch": state.epoch - 1,
        "optimizer_state": optimizer.state_dict(), "scaler_state": scaler.state_dict() if scaler else {},
        "step": state.step, "best_dice": state.best_dice, "stale": state.stale,
        "schedule": state.schedule.to_dict() if state.schedule else None,
        "epoch_seconds": list(state.epoch_seconds), "step_seconds": state.step_seconds,
        "rng_state": ckpt.rng_state(), "seed": setup.seed,
    }


def _restore(setup: TrainSetup, model, optimizer, scaler, state: RunState) -> None:
    """Load checkpoint_latest.pt into model/optimizer/state and trim the log to its epoch."""
    payload = ckpt.load_checkpoint(workdir.checkpoint_path(setup.fold_dir, "latest"),
                                   setup.configuration.sha256(), map_location=setup.device)
    model.load_state_dict(payload["network_state"])
    optimizer.load_state_dict(payload["optimizer_state"])
    if scaler is not None and payload.get("scaler_state"):
        scaler.load_state_dict(payload["scaler_state"])
    state.epoch, state.step = payload["epoch"] + 1, payload["step"]
    state.best_dice, state.stale = payload["best_dice"], payload["stale"]
    state.epoch_seconds = list(payload.get("epoch_seconds", []))
    state.step_seconds = float(payload.get("step_seconds", 0.0))
    state.step_seconds_before = state.step_seconds
    sched = payload.get("schedule")
    if sched:
        sched = {k: v for k, v in sched.items() if k != "total_steps"}
        state.schedule = Schedule(**sched)
    ckpt.set_rng_state(payload["rng_state"])
    log_path = setup.fold_dir / "log.jsonl"
    records = [r for r in read_log(log_path) if r.get("epoch", -1) < state.epoch]
    write_log(log_path, records)


def _validation_summary(setup: TrainSetup, counts: dict, info: dd.DistInfo) -> dict:
    """Dice per class and validation loss, summed over ranks."""
    stacked = torch.stack([counts["tp"], counts["fp"], counts["fn"]])
    stacked = dd.all_reduce_sum(stacked, info)
    loss_cases = dd.all_reduce_sum(torch.tensor([counts["loss"], counts["cases"]], dtype=torch.float64), info)
    dice = dice_from_counts(*stacked)
    present = [d for d in dice if d is not None]
    return {"val_loss": float(loss_cases[0]) / max(float(loss_cases[1]), 1.0),
            "val_dice": dict(zip(setup.output_names, dice)),
            "val_mean_dice": float(np.mean(present)) if present else None}


def _save_epoch(setup: TrainSetup, model, optimizer, scaler, state: RunState, record: dict, improved: bool,
                plot: bool = True) -> None:
    """Rank 0: append the log line, write checkpoint_latest (and _best), redraw progress.png when `plot`."""
    append_log(setup.fold_dir / "log.jsonl", record)
    payload = _checkpoint_payload(setup, model, optimizer, scaler, state)
    ckpt.save_checkpoint(workdir.checkpoint_path(setup.fold_dir, "latest"), payload)
    if improved:
        ckpt.save_checkpoint(workdir.checkpoint_path(setup.fold_dir, "best"), payload)
    if plot:
        plot_progress(read_log(setup.fold_dir / "log.jsonl"), setup.fold_dir / "progress.png")
