"""Benchmark: one training step of segkit against nnU-Net v2's own `train_step`, same network, patch and batch (#27).

Both run in one process on the same torch (run it with the interpreter that has nnU-Net v2,
/work/main/.bench-venv, and this tree on PYTHONPATH), on the same random batch:
- nnU-Net v2: `nnUNetTrainer.train_step` itself (to device, zero_grad, forward, DC_and_CE_loss with
  its deep-supervision weights, backward, clip 12, SGD nesterov step) on PlainConvUNet built by
  `get_network_from_plans`;
- segkit: `segkit.training.trainer.train_step` (the same sequence: forward, Dice + CE with
  deep-supervision weights, backward, clip, the short-cpu recipe's AdamW step) on segkit's U-Net
  of the same stages, widths, kernels, strides and blocks; optionally also with channels-last
  (`--channels-last`, segkit train's `--channels-last`).
The tools alternate (ABAB, the order swapped every round) so the machine's load falls on both alike;
each measurement is the median of `--steps` steps after WARMUP untimed ones. Prints one JSON line
per measurement and a summary with steps per second of each and the step-time ratio segkit / nnU-Net.

    PYTHONPATH=$PWD /work/main/.bench-venv/bin/python scripts/bench_train_step_nnunet.py --threads 1
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

WARMUP = 2
CLASSES = 13                       # the lateralised brain dataset: background + 12 structures
# bench_real.FIXED_CONFIGURATION: the 8-minute hardware fit's choice for the lateral dataset
PATCH = [40, 48, 40]
BATCH = 2
FEATURES = [16, 32, 64, 128]


def segkit_parts(channels_last: bool) -> tuple:
    """segkit's U-Net, loss, optimizer (short-cpu recipe) and step function."""
    from segkit.networks import build_network
    from segkit.training.losses import build_loss
    from segkit.training.precision import make_autocast
    from segkit.training.recipe import SHORT_CPU, build_optimizer
    from segkit.training.trainer import train_step

    stages = len(FEATURES)
    arch = {"family": "unet", "spatial_dims": 3, "features_per_stage": FEATURES, "kernel_sizes": [[3, 3, 3]] * stages,
            "strides": [[1, 1, 1]] + [[2, 2, 2]] * (stages - 1), "norm": "instance", "deep_supervision": True,
            "init": "pytorch", "blocks_per_stage": [2] * stages, "decoder_blocks_per_stage": [2] * (stages - 1)}
    torch.manual_seed(0)
    model = build_network(arch, 1, CLASSES)
    if channels_last:
        model = model.to(memory_format=torch.channels_last_3d)
    optimizer = build_optimizer(model.parameters(), SHORT_CPU.optimizer, SHORT_CPU.lr, SHORT_CPU.momentum,
                                SHORT_CPU.weight_decay)
    loss = build_loss("softmax", stages)
    autocast, scaler = make_autocast(torch.device("cpu"), "fp32")     # segkit train's CPU default precision

    def step(data: torch.Tensor, targets: list[torch.Tensor]) -> float:
        """One segkit optimiser step (fp32, as on CPU)."""
        if channels_last:
            data = data.contiguous(memory_format=torch.channels_last_3d)
        return train_step(model, data, targets, loss, optimizer, scaler, autocast, SHORT_CPU.grad_clip)

    return model, step


def nnunet_parts() -> tuple:
    """nnU-Net v2's PlainConvUNet, DC_and_CE_loss with deep supervision, SGD, and its own train_step."""
    from nnunetv2.training.loss.compound_losses import DC_and_CE_loss
    from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper
    from nnunetv2.training.loss.dice import MemoryEfficientSoftDiceLoss
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
    from nnunetv2.utilities.get_network_from_plans import get_network_from_plans

    stages = len(FEATURES)
    kwargs = {"n_stages": stages, "features_per_stage": FEATURES, "conv_op": "torch.nn.modules.conv.Conv3d",
              "kernel_sizes": [[3, 3, 3]] * stages, "strides": [[1, 1, 1]] + [[2, 2, 2]] * (stages - 1),
              "n_conv_per_stage": [2] * stages, "n_conv_per_stage_decoder": [2] * (stages - 1), "conv_bias": True,
              "norm_op": "torch.nn.modules.instancenorm.InstanceNorm3d", "norm_op_kwargs": {"eps": 1e-5, "affine": True},
              "dropout_op": None, "dropout_op_kwargs": None, "nonlin": "torch.nn.LeakyReLU",
              "nonlin_kwargs": {"inplace": True}}
    torch.manual_seed(0)
    network = get_network_from_plans("dynamic_network_architectures.architectures.unet.PlainConvUNet", kwargs,
                                     ["conv_op", "norm_op", "dropout_op", "nonlin"], 1, CLASSES, deep_supervision=True)
    loss = DC_and_CE_loss({"batch_dice": False, "smooth": 1e-5, "do_bg": False, "ddp": False}, {}, weight_ce=1,
                          weight_dice=1, ignore_label=None, dice_class=MemoryEfficientSoftDiceLoss)
    weights = np.array([1 / (2 ** i) for i in range(stages)])
    weights[-1] = 0
    loss = DeepSupervisionWrapper(loss, weights / weights.sum())
    trainer = object.__new__(nnUNetTrainer)    # nnU-Net's own train_step, without its dataset and plans files
    trainer.device, trainer.network, trainer.loss, trainer.grad_scaler = torch.device("cpu"), network, loss, None
    trainer.optimizer = torch.optim.SGD(network.parameters(), 1e-2, weight_decay=3e-5, momentum=0.99, nesterov=True)

    def step(data: torch.Tensor, targets: list[torch.Tensor]) -> float:
        """One nnU-Net v2 optimiser step (nnUNetTrainer.train_step)."""
        return float(trainer.train_step({"data": data, "target": targets})["loss"])

    return network, step


def batch_for(model: torch.nn.Module) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """A random batch and label maps at every deep-supervision output's resolution."""
    generator = torch.Generator().manual_seed(1)
    data = torch.randn(BATCH, 1, *PATCH, generator=generator)
    with torch.no_grad():
        outputs = model(data)
    return data, [torch.randint(0, CLASSES, (BATCH, 1, *o.shape[2:]), generator=generator).float() for o in outputs]


def median_step_s(step, data: torch.Tensor, targets: list[torch.Tensor], steps: int) -> float:
    """Median wall seconds of `steps` steps after WARMUP untimed ones."""
    timings = []
    for index in range(WARMUP + steps):
        start = time.perf_counter()
        step(data, targets)
        if index >= WARMUP:
            timings.append(time.perf_counter() - start)
    return statistics.median(timings)


def parameter_count(model: torch.nn.Module) -> int:
    """Trainable parameters (the same network has the same count)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def main() -> None:
    """Alternate the tools' measurements, print each and the summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads for both")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--channels-last", action="store_true", help="also measure segkit with channels-last")
    parser.add_argument("--out", help="write the JSON summary here too")
    args = parser.parse_args()
    try:
        import nnunetv2  # noqa: F401
    except ImportError:
        print("error: nnU-Net v2 is not importable: run with /work/main/.bench-venv/bin/python "
              "(bash scripts/setup_bench_env.sh)", file=sys.stderr)
        raise SystemExit(2) from None
    torch.set_num_threads(args.threads)
    nn_model, nn_step = nnunet_parts()
    tools = {"nnunet": nn_step}
    sk_model, tools["segkit"] = segkit_parts(False)
    if args.channels_last:
        tools["segkit_channels_last"] = segkit_parts(True)[1]
    data, targets = batch_for(sk_model)
    nn_data, nn_targets = data, batch_for(nn_model)[1]
    assert [t.shape for t in nn_targets] == [t.shape for t in targets], "the two networks' outputs differ in shape"
    nn_targets = targets
    times: dict[str, list[float]] = {name: [] for name in tools}
    for round_ in range(args.rounds):
        order = list(tools) if round_ % 2 == 0 else list(reversed(tools))
        for name in order:
            load = os.getloadavg()[0]
            seconds = median_step_s(tools[name], nn_data if name == "nnunet" else data,
                                    nn_targets if name == "nnunet" else targets, args.steps)
            times[name].append(seconds)
            print(json.dumps({"round": round_, "tool": name, "median_step_s": round(seconds, 4),
                              "load_1min": round(load, 2)}), flush=True)
    medians = {name: statistics.median(values) for name, values in times.items()}
    summary = {"torch": torch.__version__, "threads": torch.get_num_threads(), "cpus": os.cpu_count(),
               "patch": PATCH, "batch": BATCH, "features": FEATURES, "classes": CLASSES,
               "parameters": {"segkit": parameter_count(sk_model), "nnunet": parameter_count(nn_model)},
               "median_step_s": {k: round(v, 4) for k, v in medians.items()},
               "steps_per_s": {k: round(1 / v, 3) for k, v in medians.items()},
               "ratio_segkit_over_nnunet_step_time": round(medians["segkit"] / medians["nnunet"], 3),
               "per_round_s": {k: [round(v, 4) for v in vs] for k, vs in times.items()},
               "load_1min_end": round(os.getloadavg()[0], 2)}
    if "segkit_channels_last" in medians:
        summary["ratio_channels_last_over_default"] = round(medians["segkit_channels_last"] / medians["segkit"], 3)
    print(json.dumps(summary, indent=1))
    if args.out:
        Path(args.out).write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
