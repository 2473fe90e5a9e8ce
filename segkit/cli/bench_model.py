"""`segkit bench-model`: what a configuration costs -- parameters, FLOPs, memory, step time, throughput, U-Score."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from segkit.cli.options import network_choices
from segkit.errors import UserError


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the bench-model subcommand."""
    parser = subparsers.add_parser(
        "bench-model", help="efficiency report of a configuration: params, FLOPs, memory, speed, U-Score",
        description="For a configuration of a work dir's plans (or --network FAMILY on --patch-size), print the "
                    "parameters, FLOPs per patch, predicted and measured peak training memory, training step time, "
                    "inference throughput and, given --dice and --reference, the U-Score.")
    parser.add_argument("plans", nargs="?", help="work dir or plans.json written by `segkit plan`")
    parser.add_argument("--configuration", default="3d_fullres", help="configuration in plans.json")
    parser.add_argument("--network", choices=network_choices(auto=False), metavar="FAMILY",
                        help="instead of a plan: a fresh network of this family (%(choices)s) on --patch-size")
    parser.add_argument("--patch-size", type=int, nargs="+", help="patch size (overrides the plan's)")
    parser.add_argument("--batch-size", type=int, help="training batch size (default: the plan's, else 2)")
    parser.add_argument("--in-channels", type=int, default=1, help="input channels with --network (default 1)")
    parser.add_argument("--num-outputs", type=int, default=2, help="output channels with --network (default 2)")
    parser.add_argument("--steps", type=int, default=2, help="training steps measured (the fastest after the first)")
    parser.add_argument("--repeats", type=int, default=3, help="timed inference passes (the fastest counts)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--no-measure", action="store_true", help="skip the training-step measurement (memory, time)")
    parser.add_argument("--dice", type=float, help="validation Dice of this configuration, for the U-Score")
    parser.add_argument("--reference", help="reference models for the U-Score: results JSON of "
                                            "scripts/bench_families.py (rows with dice, parameters, flops, throughput)")
    parser.add_argument("--out", help="write the report as JSON here")
    parser.set_defaults(func=run)


def _positive(name: str, value: int | None) -> None:
    """UserError unless value is None or >= 1."""
    if value is not None and value < 1:
        raise UserError(f"{name} must be at least 1, got {value}")


def _from_plans(args: argparse.Namespace) -> tuple[dict, list[int], int, int, int, str]:
    """(architecture, patch, batch, in_channels, num_outputs, source) of a plans configuration."""
    from segkit.plans import read_plans
    from segkit.workdir import plans_path

    path = Path(args.plans)
    path = plans_path(path) if path.is_dir() else path
    if not path.is_file():
        raise UserError("no plans.json here; give a work dir or a plans.json written by `segkit plan`", path)
    plans = read_plans(path)
    entry = plans.configuration(args.configuration)
    arch = entry.architecture
    patch = list(args.patch_size or entry.patch_size)
    if len(patch) != arch.spatial_dims:
        raise UserError(f"--patch-size needs {arch.spatial_dims} values, got {len(patch)}", path)
    batch = args.batch_size or entry.batch_size
    return arch.as_dict(), patch, batch, plans.num_channels, plans.num_outputs, f"{path} [{args.configuration}]"


def _from_network(args: argparse.Namespace) -> tuple[dict, list[int], int, int, int, str]:
    """(architecture, patch, batch, in_channels, num_outputs, source) of a fresh family network."""
    from segkit.planning.architecture import architecture_for_patch

    if not args.patch_size or len(args.patch_size) not in (2, 3):
        raise UserError("--network needs --patch-size with 2 or 3 values")
    _positive("--in-channels", args.in_channels)
    if args.num_outputs < 2:
        raise UserError(f"--num-outputs must be at least 2 (background + one class), got {args.num_outputs}")
    try:
        arch = architecture_for_patch(args.network, list(args.patch_size))
    except ValueError as err:
        raise UserError(str(err)) from None
    return (arch, list(args.patch_size), args.batch_size or 2, args.in_channels, args.num_outputs,
            f"--network {args.network}")


def _reference_rows(path: str) -> list[dict]:
    """The reference models of a results JSON (its "rows", or the list itself)."""
    from segkit.evaluation.uscore import METRICS, MIN_REFERENCES
    from segkit.jsonio import read_json

    data = read_json(path, "U-Score reference")
    rows = data.get("rows") if isinstance(data, dict) else data
    if not isinstance(rows, list) or not rows or not all(isinstance(r, dict) and all(
            isinstance(r.get(m), (int, float)) for m in METRICS) for r in rows):
        raise UserError(f"a U-Score reference needs a non-empty list of rows with {list(METRICS)}", path)
    if len(rows) < MIN_REFERENCES:
        raise UserError(f"a U-Score reference needs at least {MIN_REFERENCES} models to normalise between, "
                        f"got {len(rows)} (one model spreads no range, so every term would be undefined)", path)
    return rows


def check_arguments(args: argparse.Namespace) -> None:
    """Every user mistake of the flags, before anything is built."""
    if (args.plans is None) == (args.network is None):
        raise UserError("give a work dir / plans.json or --network FAMILY (one of them)")
    for name in ("batch_size", "steps", "repeats", "threads"):
        _positive("--" + name.replace("_", "-"), getattr(args, name))
    if args.patch_size and any(p < 1 for p in args.patch_size):
        raise UserError(f"--patch-size values must be positive, got {args.patch_size}")
    if args.dice is not None and not 0.0 <= args.dice <= 1.0:
        raise UserError(f"--dice must be between 0 and 1, got {args.dice}")
    if args.dice is not None and not args.reference:
        raise UserError("--dice needs --reference (the U-Score normalises against reference models, "
                        "e.g. the results JSON of scripts/bench_families.py)")


def model_report(arch: dict, patch: list[int], batch: int, in_channels: int, num_outputs: int, steps: int = 2,
                 repeats: int = 3, threads: int | None = None, measure: bool = True) -> dict:
    """Parameters, FLOPs, predicted/measured peak memory, step time and inference throughput of one configuration."""
    import torch

    from segkit.networks import build_network
    from segkit.networks.measurement.efficiency import count_flops, inference_throughput, parameter_count
    from segkit.networks.measurement.measure import measure_in_subprocess
    from segkit.planning.memory import estimate_peak_bytes

    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    network = build_network(arch, in_channels, num_outputs)
    forward = count_flops(network, in_channels, patch)
    training = count_flops(network, in_channels, patch, training=True)
    predicted = estimate_peak_bytes(arch, patch, batch, in_channels, num_outputs)
    report = {"family": arch["family"], "patch_size": patch, "batch_size": batch, "in_channels": in_channels,
              "num_outputs": num_outputs, "parameters": parameter_count(network),
              "predicted_parameters": predicted["parameter_count"], "flops": forward, "training_flops": training,
              "training_flops_ratio": training / forward if forward else None,
              "predicted_step_bytes": predicted["total"] - predicted["parameters"],
              "predicted_total_bytes": predicted["total"],
              "inference": inference_throughput(network, in_channels, patch, repeats),
              "threads": torch.get_num_threads()}
    if measure:
        spec = {"arch": arch, "patch_size": patch, "batch_size": batch, "in_channels": in_channels,
                "num_outputs": num_outputs, "steps": max(2, steps), "threads": torch.get_num_threads()}
        measured = measure_in_subprocess(spec)
        report |= {"measured_step_bytes": measured["peak_bytes"], "step_seconds": measured["step_seconds"]}
    return report


def format_report(report: dict) -> str:
    """The printed report."""
    mib = 2 ** 20
    voxels = math.prod(report["patch_size"])
    lines = [f"{report['source']}: {report['family']}, patch {'x'.join(map(str, report['patch_size']))} "
             f"({voxels:,} voxels), batch {report['batch_size']}, {report['threads']} thread(s)",
             f"parameters          {report['parameters']:,} (memory model: {report['predicted_parameters']:,})",
             f"FLOPs per patch     {report['flops'] / 1e9:.2f} G forward, {report['training_flops'] / 1e9:.2f} G "
             f"forward + backward ({report['training_flops_ratio']:.2f}x forward, counted)"]
    line = f"peak training mem   predicted {report['predicted_step_bytes'] / mib:.1f} MiB above the weights"
    if "measured_step_bytes" in report:
        line += f", measured {report['measured_step_bytes'] / mib:.1f} MiB (CPU process peak)"
        lines += [line, f"training step       {report['step_seconds']:.3f} s (batch {report['batch_size']})"]
    else:
        lines.append(line)
    lines.append(f"inference           {report['inference']['voxels_per_second']:,.0f} voxels/s "
                 f"({report['inference']['seconds_per_patch']:.3f} s per patch, batch 1, no grad)")
    if "u_score" in report:
        lines.append(format_u_score(report["u_score"], report["dice"], report["u_score_formula"]))
    return "\n".join(lines)


def _score_text(value: float | None) -> str:
    """A U-Score term or score, or "undefined"."""
    return "undefined" if value is None else f"{value:.3f}"


def format_u_score(terms: dict, dice: float, formula: str) -> str:
    """The U-Score line; names the terms left undefined by an empty reference range."""
    from segkit.evaluation.uscore import undefined_terms

    line = (f"U-Score             {_score_text(terms['u_score'])} at Dice {dice:.3f} "
            f"(efficiency {_score_text(terms['efficiency'])}; {formula})")
    empty = undefined_terms(terms)
    if empty:
        line += (f"\nU-Score note        undefined term(s) {', '.join(empty)}: every reference model has the same "
                 "value, so the reference range is empty")
    return line


def run(args: argparse.Namespace) -> int:
    """Build, count, measure and print; optionally the U-Score and a JSON report."""
    from segkit.evaluation.uscore import FORMULA, reference_bounds, u_score_terms
    from segkit.jsonio import write_json

    check_arguments(args)
    reference = _reference_rows(args.reference) if args.reference else None
    arch, patch, batch, in_channels, num_outputs, source = _from_plans(args) if args.plans else _from_network(args)
    try:
        report = model_report(arch, patch, batch, in_channels, num_outputs, args.steps, args.repeats, args.threads,
                              measure=not args.no_measure)
    except ValueError as err:   # an entry the family's builder refuses
        raise UserError(f"{source}: {err}") from None
    report["source"] = source
    if args.dice is not None and reference is not None:
        terms = u_score_terms(args.dice, report["parameters"], report["flops"],
                              report["inference"]["voxels_per_second"], reference_bounds(reference))
        report |= {"dice": args.dice, "u_score": terms, "u_score_formula": FORMULA}
    print(format_report(report))
    if args.out:
        write_json(args.out, report)
    return 0
