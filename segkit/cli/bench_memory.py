"""`segkit bench-memory`: measure one training step's peak memory and time vs the memory model."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from segkit.cli.options import OwnedChoices, add_device_option
from segkit.errors import UserError

if TYPE_CHECKING:   # the CLI imports its work lazily
    from segkit.plans import Configuration, Plans


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the bench-memory subcommand."""
    parser = subparsers.add_parser("bench-memory", help="measure a configuration's training-step peak memory",
                                   description="Build the network of a plans.json configuration, run training "
                                               "steps in a fresh process per mode, and compare the measured peak "
                                               "with the memory model's prediction.")
    parser.add_argument("plans", help="plans.json written by `segkit plan`")
    parser.add_argument("--configuration", default="3d_fullres", help="configuration in plans.json")
    parser.add_argument("--patch-size", type=int, nargs="+", help="override the planned patch size")
    parser.add_argument("--batch-size", type=int, help="override the planned batch size")
    parser.add_argument("--modes", nargs="+", metavar="MODE",
                        choices=OwnedChoices("segkit.networks.registry", "execution_modes"),
                        help="execution modes to measure, of those the family has (%(choices)s; default: all "
                             "of the family's, e.g. revmbconv: reversible plain checkpoint, unet: plain)")
    add_device_option(parser, default="cpu",
                      help_text="cpu (process RSS, fresh subprocess per mode) or cuda[:N] (allocator peaks, this process)")
    parser.add_argument("--precision", choices=("fp32", "bf16", "fp16"), default="fp32",
                        help="forward under autocast (fp16: CUDA only)")
    parser.add_argument("--cudnn-benchmark", action="store_true", help="cuDNN autotuner (CUDA)")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--out", help="write the results as JSON here")
    parser.set_defaults(func=run)


def _entry(plans_path: Path, configuration: str) -> tuple[Plans, Configuration]:
    """The plans and one configuration, with clear errors for a bad file or name."""
    from segkit.plans import configuration_of, read_plans

    plans = read_plans(plans_path)
    return plans, configuration_of(plans, configuration)


def run(args: argparse.Namespace) -> int:
    """Measure each mode, print measured vs predicted, optionally write JSON."""
    import torch

    from segkit.jsonio import write_json
    from segkit.networks.measurement.measure import measure_in_subprocess, measure_step
    from segkit.networks.registry import family_of
    from segkit.planning.cuda_calibration import predict_cuda_bytes
    from segkit.planning.memory import estimate_peak_bytes
    from segkit.plans import num_channels_of, num_outputs_of

    on_cuda = args.device.startswith("cuda")
    if on_cuda and not torch.cuda.is_available():
        raise UserError("--device cuda: CUDA is not available on this machine")
    if args.precision == "fp16" and not on_cuda:
        raise UserError("--precision fp16 needs CUDA; use bf16 or fp32 on the CPU")
    plans, entry = _entry(Path(args.plans), args.configuration)
    in_channels, num_outputs = num_channels_of(plans), num_outputs_of(plans)
    arch, patch = entry.architecture.as_dict(), args.patch_size or list(entry.patch_size)
    if len(patch) != entry.architecture.spatial_dims:
        raise UserError(f"--patch-size needs {entry.architecture.spatial_dims} values, got {len(patch)}", args.plans)
    batch = args.batch_size or entry.batch_size
    try:
        family = family_of(arch)
    except ValueError as err:
        raise UserError(str(err), args.plans) from None
    modes = [m for m in args.modes or family.execution_modes if m in family.execution_modes] or \
        list(family.execution_modes[:1])
    results = []
    for mode in modes:
        variant = family.with_mode(arch, mode)
        spec = {"arch": variant, "patch_size": patch, "batch_size": batch, "in_channels": in_channels,
                "num_outputs": num_outputs, "steps": args.steps, "device": args.device,
                "precision": args.precision, "cudnn_benchmark": args.cudnn_benchmark}
        measured = measure_step(spec) if on_cuda else measure_in_subprocess(spec)
        predicted = estimate_peak_bytes(variant, patch, batch, in_channels, num_outputs)
        comparable = predicted["total"] - predicted["parameters"]
        row = {"mode": mode, "patch_size": patch, "batch_size": batch, **measured, "predicted_step_bytes": comparable,
               "predicted": predicted}
        line = f"{mode:<11} measured {measured['peak_bytes'] / 2 ** 20:9.1f} MiB   predicted {comparable / 2 ** 20:9.1f} MiB"
        if on_cuda:   # the CUDA-calibrated model (CPU defaults until scripts/gpu_check.py has calibrated it)
            cuda = predict_cuda_bytes(variant, patch, batch, in_channels, num_outputs,
                                      args.precision, args.cudnn_benchmark)
            row |= {"predicted_cuda": cuda, "predicted_step_bytes": cuda["step_allocated"]}
            line = (f"{mode:<11} measured {measured['peak_bytes'] / 2 ** 20:9.1f} MiB allocated, "
                    f"{measured['peak_reserved_bytes'] / 2 ** 20:9.1f} MiB reserved   predicted "
                    f"{cuda['step_allocated'] / 2 ** 20:9.1f} MiB ({'CUDA-calibrated' if cuda['calibrated'] else 'CPU constants'})")
        results.append(row)
        print(f"{line}   step {measured['step_seconds']:.2f} s")
    if args.out:
        write_json(args.out, {"configuration": args.configuration, "device": args.device, "precision": args.precision,
                              "cudnn_benchmark": args.cudnn_benchmark, "results": results})
    return 0


