"""``--backend auto``: torch, unless another backend was measured faster and as accurate on this machine.

The measurement is small and stored, so it is paid once per machine and network: the first
configuration's first fold runs one tile batch (``tile_batch`` tiles of the plan's patch, seeded
standard-normal values: the scale of z-scored inputs) with torch as it would run (its precision
rule), torch fp32, and every installed ONNX backend; each is timed as the median of
``TIMED_CALLS`` calls after one warm-up. A backend is chosen when it is at least ``MIN_SPEEDUP``
times faster than torch and its label map of those tiles (argmax, or sigmoid > 0.5 per region)
agrees with torch fp32's on at least ``MIN_AGREEMENT`` of the voxels (or its logits are within
``MAX_LOGIT_DIFFERENCE`` of torch fp32's everywhere); otherwise torch runs.

The record lives in ``<segkit cache>/backend_measurements.json`` (this module is its one owner),
keyed by what the timing depends on: the architecture entry, channels, outputs, tile shape and
batch, thread count, CPU model and library versions. Every record says when, how and what it
measured; report.json's ``backend`` entry carries the record the decision came from, and
``SEGKIT_BACKEND_REMEASURE=1`` measures again. GPUs keep torch (the ONNX backends run on the CPU).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import statistics
import time
from datetime import datetime, timezone
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from segkit.cachedir import cache_root
from segkit.inference.backends import ONNX_BACKENDS, backend_available

if TYPE_CHECKING:
    from segkit.inference.model import LoadedModel
    from segkit.inference.predictor import InferenceOptions
    from segkit.models.choice import ModelChoice

MEASUREMENTS_FILE = "backend_measurements.json"
MEASUREMENT_FORMAT = "segkit-backend-measurements-1"
MIN_SPEEDUP = 1.10          # under this the timing noise of a busy machine could decide
MIN_AGREEMENT = 0.9999      # the label agreement the acceptance of ONNX backends asks for
# or logits this close to torch fp32's: a label can then flip only where torch's own logits tie to within it
# (untrained or random-input tiles tie often, so agreement alone would reject an exact backend)
MAX_LOGIT_DIFFERENCE = 1e-4
TIMED_CALLS = 3


def measurements_path() -> Path:
    """Where the measurements are stored."""
    return cache_root() / MEASUREMENTS_FILE


def read_measurements() -> dict:
    """key -> record of every stored measurement ({} when none or unreadable: then it is measured again)."""
    try:
        data = json.loads(measurements_path().read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("format") != MEASUREMENT_FORMAT:
        return {}
    records = data.get("records")
    return records if isinstance(records, dict) else {}


def write_measurement(key: str, record: dict) -> None:
    """Add one record to the store (atomically)."""
    from segkit.jsonio import write_json

    records = read_measurements()
    records[key] = record
    write_json(measurements_path(), {"format": MEASUREMENT_FORMAT, "records": records})


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo), else platform's."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(package: str) -> str | None:
    """An installed distribution's version, None when absent."""
    try:
        return importlib_metadata.version(package)
    except importlib_metadata.PackageNotFoundError:
        return None


def measurement_key(model: LoadedModel, options: InferenceOptions) -> tuple[str, dict]:
    """(hash, the facts it hashes): what a backend timing depends on."""
    facts = {"architecture": model.entry.architecture.as_dict(), "in_channels": int(model.network_in_channels),
             "num_outputs": model.num_outputs, "patch_size": list(model.entry.patch_size),
             "tile_batch": options.tile_batch, "precision": options.precision, "threads": torch.get_num_threads(),
             "cpu": cpu_model(), "versions": {name: _version(name) for name in ("torch", *ONNX_BACKENDS)}}
    text = json.dumps(facts, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:24], facts


def labels_of(logits: torch.Tensor, label_mode: str) -> torch.Tensor:
    """Label map of (B, K, ...) logits: argmax, or one sigmoid > 0.5 decision per region."""
    return logits > 0 if label_mode == "sigmoid" else logits.argmax(1)


def _timed(network: torch.nn.Module, batch: torch.Tensor, precision: str) -> tuple[float, torch.Tensor]:
    """Median seconds of TIMED_CALLS forward calls after one warm-up, and the fp32 logits."""
    from segkit.inference.acceleration import autocast_for
    from segkit.inference.sliding_window import forward_logits

    seconds = []
    with torch.inference_mode(), autocast_for(precision, torch.device("cpu")):
        out = forward_logits(network, batch).float()
        for _ in range(TIMED_CALLS):
            start = time.perf_counter()
            forward_logits(network, batch)
            seconds.append(time.perf_counter() - start)
    return statistics.median(seconds), out


def measure(model_dir: Path, configuration: str, fold: str | None, checkpoint: str, options: InferenceOptions) -> dict:
    """Time torch and every installed ONNX backend on one seeded tile batch; label agreement with torch fp32."""
    from segkit.inference.acceleration import resolve_precision
    from segkit.inference.model import load_model

    reference = load_model(model_dir, configuration, [fold] if fold else None, checkpoint, "cpu", "torch")
    generator = torch.Generator().manual_seed(0)
    shape = (options.tile_batch, reference.network_in_channels, *reference.entry.patch_size)
    batch = torch.randn(shape, generator=generator)
    torch_precision = resolve_precision(options.precision, torch.device("cpu"))
    _, fp32 = _timed(reference.network, batch, "fp32")
    expected = labels_of(fp32, reference.label_mode)
    torch_seconds, _ = _timed(reference.network, batch, torch_precision)
    results = {"torch": {"seconds": torch_seconds, "precision": torch_precision}}
    for backend in ONNX_BACKENDS:
        if not backend_available(backend):
            continue
        model = load_model(model_dir, configuration, [fold] if fold else None, checkpoint, "cpu", backend,
                           options.precision)
        seconds, logits = _timed(model.network, batch, "fp32")
        agreement = float((labels_of(logits, reference.label_mode) == expected).float().mean())
        results[backend] = {"seconds": seconds, "precision": model.backend_precision, "agreement": agreement,
                            "max_abs_logit_difference": float((logits - fp32).abs().max())}
    return {"measured": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "how": f"one batch of {options.tile_batch} seeded standard-normal tiles of {list(shape[2:])}, median of "
                   f"{TIMED_CALLS} calls after a warm-up; agreement = share of voxels whose label equals torch fp32's",
            "model": str(model_dir), "fold": reference.folds[0], "results": results}


def decide(record: dict) -> tuple[str, str]:
    """(backend, why) from a measurement record."""
    results = record["results"]
    torch_seconds = results["torch"]["seconds"]
    fit = [(r["seconds"], name) for name, r in results.items()
           if name != "torch" and as_accurate(r) and torch_seconds / r["seconds"] >= MIN_SPEEDUP]
    if not fit:
        return "torch", (f"no backend was >= {MIN_SPEEDUP}x faster than torch with >= {MIN_AGREEMENT:.2%} label "
                         f"agreement (or logits within {MAX_LOGIT_DIFFERENCE:g}) with torch fp32")
    seconds, name = min(fit)
    return name, (f"{torch_seconds / seconds:.2f}x faster than torch; {results[name]['agreement']:.4%} label "
                  f"agreement, largest logit difference {results[name]['max_abs_logit_difference']:.2g}")


def as_accurate(result: dict) -> bool:
    """Whether a measured backend counts as accurate as torch fp32."""
    return result["agreement"] >= MIN_AGREEMENT or result["max_abs_logit_difference"] <= MAX_LOGIT_DIFFERENCE


def choose_backend(choice: ModelChoice, options: InferenceOptions, device: str) -> tuple[str, dict | None]:
    """The backend to load (a concrete name, or "auto" for an ONNX package) and the measurement behind it."""
    from segkit.inference.model import find_onnx_folds, load_model

    if options.backend != "auto":
        return options.backend, None
    name, model_dir = next(iter(choice.model_dirs.items()))
    if find_onnx_folds(model_dir, None):
        return "auto", None                    # ONNX networks: load_model takes the first installed ONNX backend
    if not any(backend_available(b) for b in ONNX_BACKENDS):
        return "torch", {"why": "no ONNX backend is installed (pip install 'segkit-revmb[onnx]')"}
    if device != "cpu" and (device != "auto" or torch.cuda.is_available()):
        return "torch", {"why": "the ONNX backends run on the CPU; torch runs on the GPU"}
    folds = choice.folds.get(name) or None
    checkpoint = choice.checkpoint or "final"
    probe = load_model(model_dir, name, folds[:1] if folds else None, checkpoint, "cpu", "torch")
    key, facts = measurement_key(probe, options)
    record = None if os.environ.get("SEGKIT_BACKEND_REMEASURE") == "1" else read_measurements().get(key)
    if record is None:
        record = {**measure(model_dir, name, probe.folds[0], checkpoint, options), "key_facts": facts}
        write_measurement(key, record)
    backend, why = decide(record)
    return backend, {"why": why, "measurement_key": key, "measurement": record}


def backend_record(model: LoadedModel, requested: str, measurement: dict | None) -> dict:
    """report.json's backend entry: what ran, in which precision, what was asked and why."""
    entry = {"name": model.backend, "requested": requested,
             "precision": model.backend_precision if model.backend != "torch" else None}
    if measurement is not None:
        entry.update(measurement)
    return entry
