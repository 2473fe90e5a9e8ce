"""Benchmark: seconds per training step of a U-Net in float32 vs bf16 autocast (CPU), as `segkit train` makes it.

Forward under autocast, deep-supervision Dice + CE loss in float32, backward, AdamW step; batch 2,
one input channel, 13 outputs (the brain-structures benchmark's configurations). The two
precisions alternate, and each measurement is the median of the steps after a few warm-ups.

    python scripts/bench_train_step.py [--threads N] [--steps 10] [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from segkit.networks import build_network
from segkit.training.losses import build_loss

WARMUP = 3
CONFIGURATIONS = {"3 stages, 28x36x28": (3, [28, 36, 28]), "4 stages, 40x48x40": (4, [40, 48, 40])}


def unet(stages: int) -> dict:
    """The hardware fit's U-Net entry: widths 16, 32, ... with 2 blocks per stage."""
    return {"family": "unet", "spatial_dims": 3, "norm": "instance", "deep_supervision": True,
            "features_per_stage": [16 * 2 ** i for i in range(stages)], "kernel_sizes": [[3, 3, 3]] * stages,
            "strides": [[1, 1, 1]] + [[2, 2, 2]] * (stages - 1), "blocks_per_stage": [2] * stages,
            "decoder_blocks_per_stage": [2] * (stages - 1)}


def median_step_seconds(stages: int, patch: list[int], precision: str, steps: int) -> float:
    """Median seconds of `steps` training steps after WARMUP untimed ones."""
    torch.manual_seed(0)
    model = build_network(unet(stages), 1, 13)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loss_fn = build_loss("softmax", stages)
    data = torch.randn(2, 1, *patch)
    with torch.no_grad():
        targets = [torch.randint(0, 13, (2, 1, *o.shape[2:])).float() for o in model(data)]
    timings = []
    for _ in range(WARMUP + steps):
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            outputs = model(data)
        loss_fn(outputs, targets).backward()
        optimizer.step()
        timings.append(time.perf_counter() - start)
    return statistics.median(timings[WARMUP:])


def main() -> None:
    """Measure both configurations in both precisions, alternating, and print a JSON record."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = []
    for repeat in range(args.repeats):
        for name, (stages, patch) in CONFIGURATIONS.items():
            seconds = {p: median_step_seconds(stages, patch, p, args.steps) for p in ("fp32", "bf16")}
            rows.append({"repeat": repeat, "configuration": name, "fp32_s": round(seconds["fp32"], 4),
                         "bf16_s": round(seconds["bf16"], 4), "fp32_over_bf16": round(seconds["fp32"] / seconds["bf16"], 2)})
            print(json.dumps(rows[-1]), flush=True)
    print(json.dumps({"threads": torch.get_num_threads(), "torch": torch.__version__, "rows": rows}))


if __name__ == "__main__":
    main()
