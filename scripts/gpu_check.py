"""GPU readiness check: the memory model on CUDA, reversible vs plain, speed switches, segkit vs nnU-Net v2.

One script, one GPU, under 8 minutes (each part has a share of --minutes and stops measuring
when it is spent). It writes one JSON and the "GPU check results" block of docs/benchmarks/gpu-readiness.md:

1. memory grid: families (unet, resenc, revmbconv reversible and plain) x patch x batch, under
   fp32 / bf16 / fp16 autocast, cuDNN autotuner off (and on for bf16); per point
   torch.cuda.max_memory_allocated AND max_memory_reserved (segkit.networks.measurement.measure.measure_step);
2. fits the memory model's CUDA constants (autocast factor, cuDNN workspace, allocator rounding;
   segkit.planning.cuda_calibration) on the smallest and largest patches and reports predicted vs
   measured on the held-out middle patch, and the memory outside PyTorch's allocator (the CUDA
   context the plan reserves); writes segkit/planning/cuda_calibration.json, which the memory
   model and CUDA plans (`segkit plan --device cuda`, then "calibrated") read from then on;
3. reversible vs plain RevMBConv: the largest patch whose measured step fits a fixed budget;
4. step-time ratios of the speed switches: bf16 vs fp16 vs fp32, channels_last_3d, cuDNN
   benchmark, torch.compile of the network, of the reversible F/G branches;
5. segkit vs nnU-Net v2 training step time for the same plan (nnU-Net's PlainConvUNet and
   DC_and_CE_loss), when nnunetv2 is importable in this interpreter.

    PYTHONPATH=. python scripts/gpu_check.py                    # on a CUDA machine (~7.5 min)
    PYTHONPATH=. python scripts/gpu_check.py --dry-run          # CPU smoke test on tiny sizes (~1-2 min),
                                                                # writes only under --out-dir
Without CUDA and without --dry-run it refuses with exit code 2.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import platform
import statistics
import sys
import time
import traceback
from contextlib import nullcontext
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from segkit.networks import build_network  # noqa: E402
from segkit.networks.measurement.measure import measure_step  # noqa: E402
from segkit.oom import is_out_of_memory  # noqa: E402
from segkit.planning.cuda_calibration import (  # noqa: E402
    CALIBRATION_PATH,
    fit_calibration,
    predict_cuda_bytes,
    step_features,
)
from segkit.planning.memory_search import largest_patch  # noqa: E402
from segkit.plans import total_strides  # noqa: E402
from segkit.training.losses import build_loss  # noqa: E402
from segkit.training.trainer import train_step  # noqa: E402

MARK_START, MARK_END = "<!-- gpu_check results: start -->", "<!-- gpu_check results: end -->"
IN_CHANNELS, NUM_OUTPUTS = 1, 3
# shares of --minutes; the 15 % left over absorbs a measurement that starts just before its part's deadline
SHARES = {"memory": 0.35, "largest_patch": 0.15, "speed": 0.25, "nnunet": 0.10}


def architectures(tiny: bool) -> dict[str, dict]:
    """The families measured: nnU-Net-like 5-stage networks (tiny: 3 stages, narrow)."""
    stages = 3 if tiny else 5
    features = [4, 8, 16] if tiny else [32, 64, 128, 256, 320]
    common = {"spatial_dims": 3, "features_per_stage": features, "kernel_sizes": [[3, 3, 3]] * stages,
              "strides": [[1, 1, 1]] + [[2, 2, 2]] * (stages - 1), "norm": "instance", "deep_supervision": True,
              "decoder_blocks_per_stage": [2] * (stages - 1) if not tiny else [1] * (stages - 1)}
    rev = {**common, "family": "revmbconv", "blocks_per_stage": [2] * stages,
           "expansion_ratios": [2, 2, 4, 4, 4][:stages], "reversible": True, "checkpointing": False,
           "features_per_stage": [8, 16, 32] if tiny else features}
    return {"unet": {**common, "family": "unet", "blocks_per_stage": [2] * stages},
            "resenc": {**common, "family": "resenc", "blocks_per_stage": [1, 3, 4, 6, 6][:stages],
                       "decoder_blocks_per_stage": [1] * (stages - 1)},
            "revmbconv_reversible": rev, "revmbconv_plain": {**rev, "reversible": False}}


def settings(args: argparse.Namespace) -> dict:
    """Sizes and groups for a real run or a tiny dry run."""
    on_cuda = args.device.startswith("cuda")
    groups = [("fp32", False), ("bf16", False), ("fp16", False), ("bf16", True)] if on_cuda else [("fp32", False), ("bf16", False)]
    if args.dry_run:
        return {"patches": [[4, 8, 8], [8, 8, 8], [8, 16, 16]], "batches": [1], "groups": groups,
                "budget_bytes": 64 << 20, "speed_patch": [4, 8, 8], "speed_batch": 1, "steps": 1, "tiny": True,
                "largest_patch_trials": 3}
    return {"patches": [[64, 64, 64], [96, 96, 96], [128, 128, 128]], "batches": [2, 4], "groups": groups,
            "budget_bytes": 8 << 30, "speed_patch": [128, 128, 128], "speed_batch": 2, "steps": 10, "tiny": False,
            "largest_patch_trials": 7}


class Part:
    """A part's deadline within the whole run (none in a dry run: every code path runs once, on tiny sizes)."""

    def __init__(self, minutes: float, share: float, unlimited: bool = False):
        self.deadline = math.inf if unlimited else time.monotonic() + minutes * 60 * share

    def left(self) -> bool:
        """True while this part may start another measurement."""
        return time.monotonic() < self.deadline


def _spec(arch: dict, patch: list[int], batch: int, device: str, precision: str, bench: bool, steps: int = 2) -> dict:
    """A measure_step spec."""
    return {"arch": arch, "patch_size": patch, "batch_size": batch, "in_channels": IN_CHANNELS,
            "num_outputs": NUM_OUTPUTS, "steps": steps, "device": device, "precision": precision,
            "cudnn_benchmark": bench}


def _measure(spec: dict) -> dict | None:
    """measure_step, or None when the step ran out of memory."""
    try:
        return measure_step(spec)
    except Exception as err:  # noqa: BLE001 -- an OOM is a result here, anything else is re-raised
        if is_out_of_memory(err):
            torch.cuda.empty_cache()
            return None
        raise


def non_pytorch_bytes(device: str) -> int | None:
    """Card memory in use outside PyTorch's allocator (CUDA context, cuDNN/cuBLAS handles), after the grid ran.

    total - free - reserved, measured once the grid's steps have loaded the libraries; on a shared card
    it also counts other processes' memory (run the check on an idle GPU).
    """
    if not device.startswith("cuda"):
        return None
    dev = torch.device(device)
    torch.cuda.synchronize(dev)
    torch.cuda.empty_cache()
    free, total = torch.cuda.mem_get_info(dev)
    return int(total - free - torch.cuda.memory_reserved(dev))


def memory_grid(args, cfg: dict, part: Part) -> dict:
    """Measured allocated/reserved peaks over the grid; the fitted CUDA constants; held-out errors."""
    rows = []
    # every group x family x patch at the first batch size before any point at a larger batch, so a
    # time-limited run still has the fit's patches and the held-out middle one for each group
    points = [(family, arch, patch, batch, precision, bench)
              for batch in cfg["batches"] for precision, bench in cfg["groups"]
              for family, arch in architectures(cfg["tiny"]).items()
              for patch in (cfg["patches"][0], cfg["patches"][-1], cfg["patches"][1])]
    for family, arch, patch, batch, precision, bench in points:
        if not part.left():
            break
        measured = _measure(_spec(arch, patch, batch, args.device, precision, bench))
        if measured is None:
            rows.append({"family": family, "patch_size": patch, "batch_size": batch, "precision": precision,
                         "cudnn_benchmark": bench, "out_of_memory": True})
            continue
        features = step_features(arch, patch, batch, IN_CHANNELS, NUM_OUTPUTS)
        reserved_step = measured.get("peak_reserved_bytes", measured["peak_bytes"])
        rows.append({"family": family, "patch_size": patch, "batch_size": batch, "precision": precision,
                     "cudnn_benchmark": bench, "features": features, "measured_step": measured["peak_bytes"],
                     "measured_reserved_total": features["parameters"] + reserved_step,
                     "step_seconds": measured["step_seconds"]})
        print(f"memory {family} {patch} b{batch} {precision} bench={bench}: "
              f"{measured['peak_bytes'] / 2 ** 20:.1f} MiB allocated, {reserved_step / 2 ** 20:.1f} MiB reserved", flush=True)
    ok = [r for r in rows if "features" in r]
    held_out = cfg["patches"][1]
    train = [r for r in ok if r["patch_size"] != held_out]
    calibration = fit_calibration(train or ok)
    archs = architectures(cfg["tiny"])
    for row in ok:
        predicted = predict_cuda_bytes(archs[row["family"]], row["patch_size"], row["batch_size"], IN_CHANNELS,
                                       NUM_OUTPUTS, row["precision"], row["cudnn_benchmark"], calibration)
        row["predicted_step"] = predicted["step_allocated"]
        row["error"] = round(predicted["step_allocated"] / row["measured_step"] - 1, 4) if row["measured_step"] > 0 else None
        row["held_out"] = row["patch_size"] == held_out
    errors = [abs(r["error"]) for r in ok if r["held_out"] and r["error"] is not None]
    context = non_pytorch_bytes(args.device)
    if context is not None:   # the plan's reserve for the CUDA context (segkit.planning.device_memory)
        calibration["context_bytes"] = context
    return {"rows": rows, "calibration": calibration, "held_out_patch": held_out,
            "held_out_max_abs_error": max(errors) if errors else None, "held_out_points": len(errors),
            "complete": len(rows) == len(points)}


def largest_measured_patch(args, cfg: dict, part: Part) -> dict:
    """Per mode, the largest patch (cube aspect) whose measured step + weights fits the budget, from the model's guess."""
    budget = cfg["budget_bytes"]
    archs = architectures(cfg["tiny"])
    result = {"budget_bytes": budget, "precision": "fp32", "batch_size": 2}
    for mode in ("reversible", "plain"):
        arch = archs[f"revmbconv_{mode}"]
        div = total_strides(arch)
        cube = [4096] * 3
        ctx = {"batch_size": 2, "in_channels": IN_CHANNELS, "num_outputs": NUM_OUTPUTS}
        guess = largest_patch(budget, arch, cube, ctx) or div
        trials = []

        def fits(patch: list[int], arch: dict = arch, trials: list = trials, mode: str = mode) -> bool:
            """Measure one step at patch; True when weights + step peak stay within the budget."""
            measured = _measure(_spec(arch, patch, 2, args.device, "fp32", False, steps=2))
            total = None if measured is None else measured["peak_bytes"] + 4 * measured["parameters"]
            trials.append({"patch_size": patch, "total_bytes": total})
            print(f"largest patch {mode} {patch}: {'OOM' if total is None else f'{total / 2 ** 20:.0f} MiB'}", flush=True)
            return total is not None and total <= budget

        low, high = 0, None                                     # patch = k x the total strides per axis
        k = max(1, guess[0] // div[0])
        for _ in range(cfg["largest_patch_trials"]):
            if not part.left() or (high is not None and high - low <= 1):
                break
            if fits([k * d for d in div]):
                low = k
                k = k * 5 // 4 + 1 if high is None else (k + high) // 2
            else:
                high = k
                k = (low + k) // 2 if low else max(1, k * 3 // 4)
                if k == high:
                    break
        best = [low * d for d in div] if low else None
        result[mode] = {"predicted_patch": guess, "largest_measured_patch": best,
                        "voxels": math.prod(best) if best else 0, "trials": trials}
    if result["plain"]["voxels"]:
        result["reversible_over_plain_voxels"] = round(result["reversible"]["voxels"] / result["plain"]["voxels"], 2)
    return result


def _median_step_seconds(model, data, targets, loss_fn, precision: str, device: torch.device, steps: int,
                         channels_last: bool = False) -> float:
    """Median seconds of training steps (train_step as the trainer runs it) after two warm-up steps."""
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    autocast = (lambda: torch.autocast(device.type, dtype=dtype)) if dtype else nullcontext
    scaler = torch.amp.GradScaler("cuda") if precision == "fp16" and device.type == "cuda" else None
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-2, momentum=0.99, nesterov=True)
    if channels_last:
        data = data.contiguous(memory_format=torch.channels_last_3d)
    times = []
    for _ in range(2 + steps):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        train_step(model, data, targets, loss_fn, optimizer, scaler, autocast, 12.0)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times[2:])


def _segkit_model(arch: dict, patch: list[int], batch: int, device: torch.device):
    """A seeded segkit network, a batch and its deep-supervision targets."""
    torch.manual_seed(0)
    model = build_network(arch, IN_CHANNELS, NUM_OUTPUTS).to(device)
    data = torch.randn(batch, IN_CHANNELS, *patch, device=device)
    with torch.no_grad():
        outputs = model(data)
    targets = [torch.randint(0, NUM_OUTPUTS, (batch, 1, *o.shape[2:]), device=device).float() for o in outputs]
    return model, data, targets, build_loss("softmax", len(outputs), True)


def speed_switches(args, cfg: dict, part: Part) -> dict:
    """Step-time ratios of each switch against bf16 (CUDA) / fp32 (CPU) without switches."""
    device = torch.device(args.device)
    base_precision = "bf16" if device.type == "cuda" else "fp32"
    variants = [("baseline", "unet", {}), ("fp32", "unet", {"precision": "fp32"}),
                ("bf16", "unet", {"precision": "bf16"}), ("fp16", "unet", {"precision": "fp16"}),
                ("channels_last_3d", "unet", {"channels_last": True}), ("cudnn_benchmark", "unet", {"bench": True}),
                ("compile_network", "unet", {"compile": "network"}),
                ("revmbconv_baseline", "revmbconv_reversible", {}),
                ("revmbconv_compile_branches", "revmbconv_reversible", {"compile": "branches"})]
    archs = architectures(cfg["tiny"])
    results = {}
    for name, family, options in variants:
        precision = options.get("precision", base_precision)
        if not part.left() or (precision == "fp16" and device.type != "cuda"):
            results[name] = {"skipped": "fp16 needs CUDA" if precision == "fp16" else "time share spent"}
            continue
        try:
            if device.type == "cuda":
                torch.backends.cudnn.benchmark = bool(options.get("bench", False))
            model, data, targets, loss_fn = _segkit_model(archs[family], cfg["speed_patch"], cfg["speed_batch"], device)
            if options.get("channels_last"):
                model = model.to(memory_format=torch.channels_last_3d)
            if options.get("compile") == "network":
                model = torch.compile(model)
            elif options.get("compile") == "branches":
                from segkit.training.speed import SpeedSwitches, apply_to_model
                model = apply_to_model(model, SpeedSwitches(compile="branches"), 3, device)
            seconds = _median_step_seconds(model, data, targets, loss_fn, precision, device, cfg["steps"],
                                           bool(options.get("channels_last")))
            results[name] = {"seconds_per_step": round(seconds, 5), "precision": precision}
            print(f"speed {name}: {seconds:.4f} s/step", flush=True)
        except Exception as err:  # noqa: BLE001 -- a switch that fails here is a result, not a crash
            results[name] = {"error": f"{type(err).__name__}: {str(err).splitlines()[0][:300] if str(err) else ''}"}
            print(f"speed {name}: failed ({results[name]['error']})", flush=True)
        finally:
            torch.backends.cudnn.benchmark = False
            if device.type == "cuda":
                torch.cuda.empty_cache()
    for name, row in results.items():
        base = results.get("revmbconv_baseline" if name.startswith("revmbconv") else "baseline", {})
        if "seconds_per_step" in row and "seconds_per_step" in base:
            row["ratio_to_baseline"] = round(row["seconds_per_step"] / base["seconds_per_step"], 3)
    return {"baseline_precision": base_precision, "patch_size": cfg["speed_patch"], "batch_size": cfg["speed_batch"],
            "variants": results}


def nnunet_comparison(args, cfg: dict, part: Part) -> dict:
    """segkit vs nnU-Net v2 step time on the same U-Net plan (nnU-Net's network and loss, same optimiser/precision)."""
    try:
        from dynamic_network_architectures.architectures.unet import PlainConvUNet
        from nnunetv2.training.loss.compound_losses import DC_and_CE_loss
        from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper
        from nnunetv2.training.loss.dice import MemoryEfficientSoftDiceLoss
    except ImportError as err:
        return {"skipped": f"nnunetv2 not importable here ({err})"}
    device = torch.device(args.device)
    precision = "fp16" if device.type == "cuda" else "fp32"      # nnU-Net v2 trains with fp16 autocast + GradScaler
    arch = architectures(cfg["tiny"])["unet"]
    stages = len(arch["features_per_stage"])
    results = {"precision": precision, "patch_size": cfg["speed_patch"], "batch_size": cfg["speed_batch"],
               "architecture": arch}
    for round_index in range(2):                                # alternate the two, twice
        if not part.left():
            break
        model, data, targets, loss_fn = _segkit_model(arch, cfg["speed_patch"], cfg["speed_batch"], device)
        segkit_s = _median_step_seconds(model, data, targets, loss_fn, precision, device, cfg["steps"])
        del model
        torch.manual_seed(0)
        peer = PlainConvUNet(IN_CHANNELS, stages, arch["features_per_stage"], torch.nn.Conv3d, arch["kernel_sizes"],
                             arch["strides"], arch["blocks_per_stage"], NUM_OUTPUTS, arch["decoder_blocks_per_stage"],
                             conv_bias=True, norm_op=torch.nn.InstanceNorm3d, norm_op_kwargs={"eps": 1e-5, "affine": True},
                             nonlin=torch.nn.LeakyReLU, nonlin_kwargs={"inplace": True}, deep_supervision=True).to(device)
        weights = [1 / 2 ** i for i in range(len(targets))]
        weights[-1] = 0
        weights = [w / sum(weights) for w in weights]
        peer_loss = DeepSupervisionWrapper(DC_and_CE_loss({"batch_dice": True, "smooth": 1e-5, "do_bg": False,
                                                           "ddp": False}, {}, weight_ce=1, weight_dice=1,
                                                          dice_class=MemoryEfficientSoftDiceLoss), weights)
        nnunet_s = _median_step_seconds(peer, data, targets, peer_loss, precision, device, cfg["steps"])
        del peer
        results.setdefault("rounds", []).append({"segkit_s": round(segkit_s, 5), "nnunet_s": round(nnunet_s, 5)})
        print(f"nnU-Net comparison round {round_index}: segkit {segkit_s:.4f} s, nnU-Net {nnunet_s:.4f} s", flush=True)
    if results.get("rounds"):
        seg = statistics.median(r["segkit_s"] for r in results["rounds"])
        peer = statistics.median(r["nnunet_s"] for r in results["rounds"])
        results |= {"segkit_s": seg, "nnunet_s": peer, "segkit_over_nnunet": round(seg / peer, 3)}
    return results


def _run_part(name: str, function, args, cfg: dict) -> dict:
    """One part; an unexpected error is recorded (with its last traceback line) and the script goes on."""
    start = time.monotonic()
    print(f"== {name}", flush=True)
    try:
        result = function(args, cfg, Part(args.minutes, SHARES[name], args.dry_run))
    except Exception as err:  # noqa: BLE001
        traceback.print_exc()
        result = {"error": f"{type(err).__name__}: {err}"[:500]}
    result["seconds"] = round(time.monotonic() - start, 1)
    return result


def _mib(value) -> str:
    """Bytes as MiB text."""
    return "-" if value is None else f"{value / 2 ** 20:,.0f}"


def markdown(report: dict) -> str:
    """The docs/benchmarks/gpu-readiness.md block for a report."""
    env = report["environment"]
    lines = [f"Run {env['date']} on {env['device_name']} (torch {env['torch']}, CUDA {env['cuda']}), "
             f"`{env['command']}`, {report['total_seconds']:.0f} s. JSON: `{env['json']}`.", ""]
    memory = report["memory"]
    if "rows" in memory:
        lines += [f"**Memory model on CUDA** (held-out patch {memory['held_out_patch']}: max |predicted/measured - 1| = "
                  f"{memory['held_out_max_abs_error']} over {memory['held_out_points']} points; fitted constants "
                  f"{json.dumps(memory['calibration']['groups'])}, allocator {json.dumps(memory['calibration']['allocator'])})",
                  "", "| family | patch | batch | precision | cudnn bench | measured alloc MiB | reserved MiB"
                  " | predicted MiB | error |",
                  "| --- | --- | ---: | --- | --- | ---: | ---: | ---: | ---: |"]
        for row in memory["rows"]:
            if row.get("out_of_memory"):
                lines.append(f"| {row['family']} | {row['patch_size']} | {row['batch_size']} | {row['precision']} | "
                             f"{row['cudnn_benchmark']} | OOM | | | |")
                continue
            lines.append(f"| {row['family']} | {row['patch_size']} | {row['batch_size']} | {row['precision']} | "
                         f"{row['cudnn_benchmark']} | {_mib(row['measured_step'])} | "
                         f"{_mib(row['measured_reserved_total'] - row['features']['parameters'])} | "
                         f"{_mib(row.get('predicted_step'))} | {row.get('error')}{' (held out)' if row.get('held_out') else ''} |")
    else:
        lines.append(f"Memory grid failed: {memory.get('error')}")
    largest = report["largest_patch"]
    if "reversible" in largest:
        lines += ["", f"**Reversible vs plain RevMBConv, largest measured patch within {_mib(largest['budget_bytes'])} MiB** "
                      f"(fp32, batch 2): reversible {largest['reversible']['largest_measured_patch']} vs plain "
                      f"{largest['plain']['largest_measured_patch']}: "
                      f"**{largest.get('reversible_over_plain_voxels', '-')}x** the voxels (goal >= 3x)."]
    speed = report["speed"].get("variants", {})
    if speed:
        lines += ["", f"**Speed switches** (U-Net / RevMBConv at {report['speed']['patch_size']}, batch "
                      f"{report['speed']['batch_size']}; ratio = step time / baseline {report['speed']['baseline_precision']}, "
                      "< 1 is faster)", "", "| variant | s/step | ratio |", "| --- | ---: | ---: |"]
        for name, row in speed.items():
            lines.append(f"| {name} | {row.get('seconds_per_step', row.get('skipped') or row.get('error'))} | "
                         f"{row.get('ratio_to_baseline', '-')} |")
    peer = report["nnunet"]
    lines += ["", "**segkit vs nnU-Net v2 training step** (same U-Net plan): " + (
        f"segkit {peer['segkit_s']:.4f} s, nnU-Net {peer['nnunet_s']:.4f} s, ratio {peer['segkit_over_nnunet']} "
        f"({peer['precision']}, {len(peer['rounds'])} alternating rounds)" if "segkit_s" in peer
        else peer.get("skipped") or peer.get("error", "not measured"))]
    return "\n".join(lines)


def write_docs(path: Path, block: str) -> None:
    """Replace the text between the gpu_check markers of docs/benchmarks/gpu-readiness.md."""
    text = path.read_text(encoding="utf-8")
    if MARK_START not in text or MARK_END not in text:
        raise SystemExit(f"{path} lacks the gpu_check markers; add {MARK_START} ... {MARK_END}")
    before, rest = text.split(MARK_START, 1)
    after = rest.split(MARK_END, 1)[1]
    path.write_text(f"{before}{MARK_START}\n{block}\n{MARK_END}{after}", encoding="utf-8")


def main() -> int:
    """Parse arguments, refuse without CUDA (unless a dry run), run the parts, write JSON + markdown."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", help="cuda[:N] (default) or cpu (only with --dry-run)")
    parser.add_argument("--dry-run", action="store_true", help="tiny sizes on the CPU (or --device); writes only under --out-dir")
    parser.add_argument("--minutes", type=float, default=7.5, help="total measuring time (default 7.5; no limit in a dry run)")
    parser.add_argument("--out-dir", default=str(REPO / "docs" / "benchmarks"), help="where gpu_check.json (and .md) go")
    parser.add_argument("--no-docs", action="store_true", help="do not rewrite docs/benchmarks/gpu-readiness.md / the calibration")
    args = parser.parse_args()
    args.device = args.device or ("cpu" if args.dry_run else "cuda")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("gpu_check: no CUDA device here; this script measures a GPU. Use --dry-run for a CPU smoke test.",
              file=sys.stderr)
        return 2
    if not args.device.startswith("cuda") and not args.dry_run:
        print("gpu_check: --device cpu is only a smoke test: add --dry-run (nothing measured on the CPU is a GPU number).",
              file=sys.stderr)
        return 2
    cfg = settings(args)
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / ("gpu_check_dry_run.json" if args.dry_run else "gpu_check.json")
    on_cuda = args.device.startswith("cuda")
    start = time.monotonic()
    report = {"environment": {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "device_name": (torch.cuda.get_device_name(torch.device(args.device)) if on_cuda
                        else f"CPU ({platform.processor() or platform.machine()})"),
        "torch": torch.__version__, "cuda": torch.version.cuda, "dry_run": args.dry_run,
        "command": "python scripts/gpu_check.py " + " ".join(sys.argv[1:]),
        "json": str(json_path.relative_to(REPO) if json_path.is_relative_to(REPO) else json_path)}}
    for name, function in (("memory", memory_grid), ("largest_patch", largest_measured_patch),
                           ("speed", speed_switches), ("nnunet", nnunet_comparison)):
        report[name] = _run_part(name, function, args, cfg)
    report["total_seconds"] = round(time.monotonic() - start, 1)
    json_path.write_text(json.dumps(report, indent=1))
    block = markdown(report)
    calibration = report["memory"].get("calibration")
    if args.dry_run or args.no_docs:
        (out_dir / json_path.with_suffix(".md").name).write_text(block + "\n", encoding="utf-8")
        if calibration:
            (out_dir / "cuda_calibration_dry_run.json").write_text(json.dumps(calibration, indent=1))
    else:
        if calibration and calibration["groups"]:
            calibration |= {"made_by": report["environment"]["command"], "device_name": report["environment"]["device_name"],
                            "date": report["environment"]["date"], "torch": torch.__version__}
            CALIBRATION_PATH.write_text(json.dumps(calibration, indent=1) + "\n")
        write_docs(REPO / "docs" / "benchmarks" / "gpu-readiness.md", block)
    print(block)
    print(f"\nwrote {json_path}" + ("" if args.dry_run or args.no_docs else f", {CALIBRATION_PATH}, docs/benchmarks/gpu-readiness.md"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
