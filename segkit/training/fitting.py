"""Hardware fitting: shrink a configuration so a short CPU time budget buys enough optimiser steps.

Rule (docs/cli/train.md): only on CPU with --time-budget (and without --no-fit). The trainer
times a few forward+backward steps on random data for a sequence of candidates and keeps the
first whose predicted step count within the budget (FIT_SHARE of it for training) reaches
TARGET_STEPS; if none does, the fastest measured candidate. Candidates, in order: the plan as
written; batch size 2; every stage's width halved (at most twice, first stage >= min_width: 8, or the recipe's); then the
patch shrunk by 0.75 per axis (rounded down to a multiple of the network's total stride per axis,
at most three times), dropping the coarsest stage whenever the bottleneck would fall below 4
voxels per axis (at least 3 stages kept). Each change is recorded in the model
dir's plans.json copy under the configuration's "training_fit" entry -- never silently.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext

import torch

from segkit.networks.architecture import stage_keys
from segkit.networks.registry import family_of
from segkit.plans import Architecture, Configuration

TARGET_STEPS = 1000
FIT_SHARE = 0.8                  # share of the budget after start-up expected to go to training steps (MIN_STEP_SHARE)
MAX_FIT_SHARE_OF_BUDGET = 0.05   # stop measuring candidates after this share of the budget (it is start-up time)
MIN_BOTTLENECK = 4               # voxels per axis of the coarsest feature map
MIN_STAGES = 3
MIN_WIDTH = 8                    # default first-stage width the fit never halves below (recipes may raise it)


def _halve_width(entry: Configuration, min_width: int = MIN_WIDTH) -> Configuration | None:
    """The configuration with every stage's width halved, or None when already narrow."""
    features = entry.architecture.features_per_stage
    if features[0] // 2 < min_width:
        return None
    return entry.replace(architecture=entry.architecture.replace(
        features_per_stage=[max(min_width, f // 2) for f in features]))


def _drop_last_stage(arch: Architecture) -> Architecture:
    """The architecture without its coarsest stage (and that stage's decoder resolution)."""
    block = arch.as_dict()
    changes = {key: list(block[key][:-1]) for key in stage_keys(block)}
    return arch.replace(**changes, decoder_blocks_per_stage=list(arch.decoder_blocks_per_stage[1:]))


def _shrink_patch(entry: Configuration) -> Configuration | None:
    """The configuration with a 0.75x patch (multiple of the total stride), or None when it cannot shrink.

    Like nnU-Net, the coarsest feature map keeps >= MIN_BOTTLENECK voxels per axis: stages are
    dropped (at least MIN_STAGES kept) rather than letting the bottleneck shrink below it; a family
    with a fixed topology (NetworkFamily.topology) keeps its stages and only shrinks the patch.
    """
    arch = entry.architecture
    new = [max(MIN_BOTTLENECK, int(p * 0.75)) for p in entry.patch_size]
    # a family whose design fixes its topology (swinunetr) keeps every stage; its floor is one divisor per axis
    fixed = family_of(arch.as_dict()).topology is not None
    while not fixed and arch.num_stages > MIN_STAGES and \
            any(n // s < MIN_BOTTLENECK for n, s in zip(new, arch.total_strides)):
        arch = _drop_last_stage(arch)
    strides = arch.total_strides
    floor = 1 if fixed else MIN_BOTTLENECK
    new = [max(s * floor if p >= s * floor else p, n // s * s)
           for n, s, p in zip(new, strides, entry.patch_size)]
    if fixed and math.prod(n // s for n, s in zip(new, strides)) < 2:   # instance norm: > 1 bottleneck voxel
        return None
    if new == list(entry.patch_size) or math.prod(new) >= math.prod(entry.patch_size):
        return None
    return entry.replace(patch_size=new, architecture=arch)


def candidates(entry: Configuration, min_width: int = MIN_WIDTH) -> Iterator[tuple[str, Configuration]]:
    """The plan, then ever cheaper variants, each with a description of its change."""
    current = entry
    yield "as planned", current
    if current.batch_size > 2:
        current = current.replace(batch_size=2)
        yield "batch size 2", current
    for _ in range(2):
        narrower = _halve_width(current, min_width)
        if narrower is None:
            break
        current = narrower
        yield f"width {list(current.architecture.features_per_stage)}", current
    for _ in range(3):
        smaller = _shrink_patch(current)
        if smaller is None:
            break
        current = smaller
        yield f"patch {list(current.patch_size)}, {current.architecture.num_stages} stages", current


def time_step(entry: Configuration, in_channels: int, num_outputs: int, build: Callable, steps: int = 2,
              autocast: Callable[[], AbstractContextManager] = nullcontext) -> float:
    """Seconds per SGD step (forward + backward, under the training's autocast) on random data, after a warm-up step."""
    model = build(entry.architecture.as_dict(), in_channels, num_outputs)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    data = torch.randn(entry.batch_size, in_channels, *entry.patch_size)
    timings = []
    for _ in range(steps + 1):
        start = time.monotonic()
        optimizer.zero_grad()
        with autocast():
            outputs = model(data)
        outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        sum(o.float().square().mean() for o in outputs).backward()
        optimizer.step()
        timings.append(time.monotonic() - start)
    return min(timings[1:])


def cost_proxy(entry: Configuration) -> float:
    """Relative step cost: batch x patch voxels x (first-stage width)^2 (full resolution dominates)."""
    voxels = math.prod(entry.patch_size)
    return entry.batch_size * voxels * entry.architecture.features_per_stage[0] ** 2


def fit_to_cpu_budget(entry: Configuration, in_channels: int, num_outputs: int, budget_s: float, build: Callable,
                      log: Callable[[str], None] = print, min_width: int = MIN_WIDTH,
                      autocast: Callable[[], AbstractContextManager] = nullcontext,
                      startup_s: float = 0.0) -> tuple[Configuration, dict]:
    """The chosen configuration entry and a record of the measurements and the decision.

    The cheapest candidate is timed first; the others' times are predicted from cost_proxy, the
    first candidate predicted to reach TARGET_STEPS is timed, and if it is slower than predicted
    the search moves on to the next candidate. Steps are predicted for the budget less the
    start-up already spent (startup_s), of which FIT_SHARE goes to steps.
    """
    deadline = time.monotonic() + budget_s * MAX_FIT_SHARE_OF_BUDGET
    budget_s = max(0.0, budget_s - startup_s)
    ordered = list(candidates(entry, min_width))
    cheapest = ordered[-1][1]
    base_seconds = time_step(cheapest, in_channels, num_outputs, build, autocast=autocast)
    measured = [{"change": ordered[-1][0], "seconds_per_step": round(base_seconds, 4),
                 "predicted_steps": int(budget_s * FIT_SHARE / base_seconds), "measured": True}]
    log(f"fit: {ordered[-1][0]}: {base_seconds:.3f} s/step")
    chosen_index = len(ordered) - 1
    for index, (change, candidate) in enumerate(ordered[:-1]):
        predicted = base_seconds * cost_proxy(candidate) / cost_proxy(cheapest)
        if budget_s * FIT_SHARE / predicted < TARGET_STEPS or time.monotonic() > deadline:
            measured.append({"change": change, "predicted_seconds_per_step": round(predicted, 4), "measured": False})
            continue
        seconds = time_step(candidate, in_channels, num_outputs, build, autocast=autocast)
        steps = int(budget_s * FIT_SHARE / seconds)
        measured.append({"change": change, "seconds_per_step": round(seconds, 4), "predicted_steps": steps,
                         "measured": True})
        log(f"fit: {change}: {seconds:.3f} s/step -> ~{steps} steps in the budget")
        if steps >= TARGET_STEPS:
            chosen_index = index
            break
    change, chosen = ordered[chosen_index]
    record = {"rule": "cpu time budget: first candidate (in order) reaching target_steps, else the cheapest",
              "target_steps": TARGET_STEPS, "min_width": min_width, "budget_s": budget_s,
              "startup_s": round(startup_s, 1), "chosen": change, "measured": measured,
              "original": {"patch_size": list(entry.patch_size), "batch_size": entry.batch_size,
                           "features_per_stage": list(entry.architecture.features_per_stage)}}
    return chosen, record
