"""The training loop: SGD + poly lr, deep supervision, AMP, DDP, per-epoch validation, checkpoints, log."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm import tqdm

from segkit.networks import build_network
from segkit.training import checkpoint as ckpt
from segkit.training import distributed as dd
from segkit.training.augmentation import SegToTarget, build_transform, sample_size_for
from segkit.training.loader import EpochBatches, PatchSampler, epoch_loader
from segkit.training.losses import build_loss
from segkit.training.precision import make_autocast
from segkit.training.recipe import build_optimizer
from segkit.training.records import append_log, peak_memory_bytes, plot_progress, read_log, write_log
from segkit.training.schedule import Schedule, final_reserve, fit_to_budget, poly_lr, refit_epochs
from segkit.training.setup import TrainSetup
from segkit.training.validation import dice_from_counts, estimate_validation_seconds, sampled_cases, validate

DEFAULT_EPOCHS = 1000
DEFAULT_ITERATIONS = 250
CALIBRATION_WARMUP = 2
CALIBRATION_STEPS = 8
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
        "architecture": setup.config_entry["architecture"], "in_channels": setup.plans["num_channels"],
        "num_outputs": setup.plans["num_outputs"], "configuration": setup.configuration,
        "plans_sha256": ckpt.plans_sha256(setup.config_entry), "epoch": state.epoch - 1,
        "optimizer_state": optimizer.state_dict(), "scaler_state": scaler.state_dict() if scaler else {},
        "step": state.step, "best_dice": state.best_dice, "stale": state.stale,
        "schedule": state.schedule.to_dict() if state.schedule else None,
        "epoch_seconds": list(state.epoch_seconds), "step_seconds": state.step_seconds, "rng_state": ckpt.rng_state(), "seed": setup.seed,
    }


def _restore(setup: TrainSetup, model, optimizer, scaler, state: RunState) -> None:
    """Load checkpoint_latest.pt into model/optimizer/state and trim the log to its epoch."""
    payload = ckpt.load_checkpoint(setup.fold_dir / "checkpoint_latest.pt", ckpt.plans_sha256(setup.config_entry),
                                   map_location=setup.device)
    model.load_state_dict(payload["network_state"])
    optimizer.load_state_dict(payload["optimizer_state"])
    if scaler is not None and payload.get("scaler_state"):
        scaler.load_state_dict(payload["scaler_state"])
    state.epoch, state.step = payload["epoch"] + 1, payload["step"]
    state.best_dice, state.stale = payload["best_dice"], payload["stale"]
    state.epoch_seconds = list(payload.get("epoch_seconds", []))
    state.step_seconds = float(payload.get("step_seconds", 0.0))
    sched = payload.get("schedule")
    if sched:
        sched = {k: v for k, v in sched.items() if k != "total_steps"}
        state.schedule = Schedule(**sched)
    ckpt.set_rng_state(payload["rng_state"])
    log_path = setup.fold_dir / "log.jsonl"
    records = [r for r in read_log(log_path) if r.get("epoch", -1) < state.epoch]
    write_log(log_path, records)


def _elapsed(setup: TrainSetup) -> float:
    """Seconds since the command started (the time budget's clock)."""
    return time.monotonic() - (setup.started_at or time.monotonic())


def _calibrate(setup: TrainSetup, run_steps, estimate_validation, state: RunState, info: dd.DistInfo) -> Schedule:
    """Time a few real training steps, estimate one validation pass, then fit the schedule to the budget."""
    # timed from the end of the warm-up steps, so the loader's process start is not counted as step time
    step_ends: list[float] = []
    run_steps(CALIBRATION_EPOCH, CALIBRATION_WARMUP + CALIBRATION_STEPS, step_ends=step_ends)
    per_step = (step_ends[-1] - step_ends[CALIBRATION_WARMUP - 1]) / CALIBRATION_STEPS
    validation_s = estimate_validation()
    per_step = dd.all_reduce_mean(per_step, info)
    elapsed = _elapsed(setup)
    schedule = fit_to_budget(setup.time_budget_s - elapsed, per_step, validation_s, setup.epochs or DEFAULT_EPOCHS,
                             setup.iterations_per_epoch or DEFAULT_ITERATIONS, budget_s=setup.time_budget_s,
                             overhead_s=elapsed - state.step_seconds, validate_every=setup.validate_every)
    return schedule


def _step_deadline(setup: TrainSetup, sched: Schedule, info: dd.DistInfo) -> float | None:
    """Elapsed seconds after which a single-process budgeted run stops stepping (validation + final still fit)."""
    if not setup.time_budget_s or info.enabled:
        return None
    return setup.time_budget_s - final_reserve(setup.time_budget_s) - sched.validation_cost_s


def _validation_summary(setup: TrainSetup, counts: dict, info: dd.DistInfo) -> dict:
    """Dice per class and validation loss, summed over ranks."""
    stacked = torch.stack([counts["tp"], counts["fp"], counts["fn"]])
    stacked = dd.all_reduce_sum(stacked, info)
    loss_cases = dd.all_reduce_sum(torch.tensor([counts["loss"], counts["cases"]], dtype=torch.float64), info)
    dice = dice_from_counts(*stacked)
    present = [d for d in dice if d is not None]
    return {"val_loss": float(loss_cases[0] / max(loss_cases[1], 1)),
            "val_dice": dict(zip(setup.output_names, dice)),
            "val_mean_dice": float(np.mean(present)) if present else None}


def _save_epoch(setup: TrainSetup, model, optimizer, scaler, state: RunState, record: dict, improved: bool) -> None:
    """Rank 0: append the log line, write checkpoint_latest (and _best), redraw progress.png."""
    append_log(setup.fold_dir / "log.jsonl", record)
    payload = _checkpoint_payload(setup, model, optimizer, scaler, state)
    ckpt.save_checkpoint(setup.fold_dir / "checkpoint_latest.pt", payload)
    if improved:
        ckpt.save_checkpoint(setup.fold_dir / "checkpoint_best.pt", payload)
    plot_progress(read_log(setup.fold_dir / "log.jsonl"), setup.fold_dir / "progress.png")


def train(setup: TrainSetup, info: dd.DistInfo | None = None) -> dict:
    """Train one fold; returns the final record (epochs run, best Dice, schedule)."""
    from segkit.jsonio import read_json, write_json
    info = info or dd.DistInfo()
    np.random.seed(setup.seed)
    torch.manual_seed(setup.seed)        # identical initial weights on every rank
    plans, entry, device = setup.plans, setup.config_entry, setup.device
    patch = list(entry["patch_size"])
    model = build_network(entry["architecture"], plans["num_channels"], plans["num_outputs"]).to(device)
    if setup.channels_last:
        model = model.to(memory_format=torch.channels_last_3d if setup.spatial_dims == 3 else torch.channels_last)
    ds_scales = deep_supervision_scales(model, plans["num_channels"], patch, device)
    loss_fn = build_loss(setup.label_mode, len(ds_scales), setup.use_batch_dice)
    val_loss_fn = build_loss(setup.label_mode, 1, setup.use_batch_dice)
    optimizer = build_optimizer(model.parameters(), setup.optimizer, setup.lr, setup.momentum, setup.weight_decay)
    autocast, scaler = make_autocast(device, setup.precision)
    state = RunState()
    if setup.resume and (setup.fold_dir / "checkpoint_latest.pt").is_file():
        _restore(setup, model, optimizer, scaler, state)
    elif info.is_main:
        write_log(setup.fold_dir / "log.jsonl", [])
    net = dd.wrap_model(model, info, device)
    net = torch.compile(net) if setup.compile else net

    batch_size = dd.per_rank_batch_size(int(entry["batch_size"]), info)
    sampler = PatchSampler(setup.train_cases, sample_size_for(patch, setup.augment), batch_size, setup.spatial_dims,
                           setup.foreground_fraction)
    transform = build_transform(patch, entry.get("mirror_axes"), ds_scales, setup.label_mode, setup.regions,
                                setup.augment, setup.elastic)
    to_target = SegToTarget(setup.label_mode, setup.regions)
    val_cases = setup.val_cases[info.rank::info.world_size]

    def run_steps(epoch: int, count: int, first: int = 0, lr_at=None, bar: str | None = None,
                  deadline: float | None = None, step_ends: list[float] | None = None) -> list[float]:
        """Run `count` steps of an epoch's batch stream (fewer if the deadline passes); returns the losses."""
        loader = epoch_loader(EpochBatches(sampler, transform, setup.seed, epoch, info.rank, count, first),
                              setup.num_workers, pin_memory=device.type == "cuda")
        losses = []
        for batch in tqdm(loader, total=count, desc=bar, disable=not (setup.progress and info.is_main and bar),
                          leave=False, mininterval=2.0):
            if lr_at is not None:
                for group in optimizer.param_groups:
                    group["lr"] = lr_at(state.step)
            data, targets = to_device(batch, device, setup.channels_last)
            step_start = time.monotonic()
            losses.append(train_step(net, data, targets, loss_fn, optimizer, scaler, autocast, setup.grad_clip))
            state.step_seconds += time.monotonic() - step_start
            if lr_at is not None:
                state.step += 1
            if step_ends is not None:
                step_ends.append(time.monotonic())
            if deadline is not None and _elapsed(setup) > deadline:
                break
        return losses

    def run_validation() -> dict:
        """Validation of this rank's share (whole cases, or the schedule's sampled regions), summed over ranks."""
        fraction = state.schedule.validation_fraction if state.schedule else 1.0
        cases = sampled_cases(val_cases, patch, fraction, setup.seed) if fraction < 1 else val_cases
        counts = validate(model, cases, patch, setup.spatial_dims, plans["num_outputs"], setup.label_mode,
                          lambda seg: to_target(seg=seg)["target"], val_loss_fn, device, setup.precision)
        return _validation_summary(setup, counts, info)

    if state.schedule is None:
        if setup.time_budget_s:
            state.schedule = _calibrate(setup, run_steps, lambda: estimate_validation_seconds(
                model, val_cases, patch, setup.spatial_dims, plans["num_channels"], device, autocast), state, info)
        else:
            state.schedule = Schedule(setup.epochs or DEFAULT_EPOCHS, setup.iterations_per_epoch or DEFAULT_ITERATIONS,
                                      setup.validate_every)
        state.schedule.epochs, state.schedule.iterations_per_epoch = dd.broadcast_ints(
            [state.schedule.epochs, state.schedule.iterations_per_epoch], info)
        if info.is_main:
            write_json(setup.fold_dir / "schedule.json", state.schedule.to_dict() | {
                "decided_at_s": round(_elapsed(setup), 2), "notes": setup.notes, "world_size": info.world_size,
                "batch_size_per_rank": batch_size, "patch_size": patch, "recipe": setup.recipe})
    sched = state.schedule
    lr_at = lambda step: poly_lr(setup.lr, step, sched.total_steps)  # noqa: E731 (total may be refitted)
    stopped_early = False
    while state.epoch < sched.epochs:
        epoch_start = time.monotonic()
        losses = run_steps(state.epoch, sched.iterations_per_epoch, lr_at=lr_at,
                           bar=f"epoch {state.epoch + 1}/{sched.epochs}", deadline=_step_deadline(setup, sched, info))
        record = {"epoch": state.epoch, "train_loss": float(dd.all_reduce_mean(float(np.mean(losses)), info)),
                  "lr": optimizer.param_groups[0]["lr"], "step": state.step}
        improved = False
        if sched.validates_after(state.epoch):
            record |= run_validation()
            mean_dice = record["val_mean_dice"] if record["val_mean_dice"] is not None else 0.0
            improved = mean_dice > state.best_dice
            state.best_dice, state.stale = (mean_dice, 0) if improved else (state.best_dice, state.stale + 1)
        state.epoch += 1
        state.epoch_seconds.append(time.monotonic() - epoch_start)
        record |= {"epoch_time_s": round(state.epoch_seconds[-1], 3), "elapsed_s": round(_elapsed(setup), 1),
                   "peak_memory_bytes": peak_memory_bytes(device)}
        if setup.time_budget_s:
            new_epochs = refit_epochs(sched, state.epoch, setup.time_budget_s - _elapsed(setup),
                                      float(np.mean(state.epoch_seconds[-3:])), setup.epochs or DEFAULT_EPOCHS)
            if new_epochs != sched.epochs:
                record["schedule_change"] = f"epochs {sched.epochs} -> {new_epochs} (refitted to measured epoch time)"
                sched.epochs = new_epochs
        stop = bool(setup.early_stop and state.stale >= setup.early_stop)
        if len(losses) < sched.iterations_per_epoch:
            record["budget_cut"] = f"time budget reached after {len(losses)} steps of this epoch"
            stop = True
        sched.epochs, stop = dd.broadcast_ints([sched.epochs, int(stop)], info)
        if info.is_main:
            _save_epoch(setup, model, optimizer, scaler, state, record, improved)
        dd.barrier(info)
        if stop:
            stopped_early = True
            break
    final = {"epochs_run": state.epoch, "steps": state.step, "best_val_mean_dice": state.best_dice,
             "stopped_early": stopped_early, "elapsed_s": round(_elapsed(setup), 1),
             "step_seconds": round(state.step_seconds, 1)}
    if setup.time_budget_s:
        # the share of the command's wall time inside optimiser steps (calibration steps included)
        final["step_share"] = round(state.step_seconds / max(_elapsed(setup), 1e-9), 3)
    if info.is_main:
        ckpt.save_checkpoint(setup.fold_dir / "checkpoint_final.pt",
                             _checkpoint_payload(setup, model, optimizer, scaler, state) | {"final": final})
        if setup.time_budget_s or stopped_early:
            decided = read_json(setup.fold_dir / "schedule.json", "schedule file")
            write_json(setup.fold_dir / "schedule.json", decided | sched.to_dict() | {"final": final})
    dd.barrier(info)
    return final
