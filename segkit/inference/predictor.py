"""Predict cases with a loaded model: preprocess -> sliding window per fold -> average -> revert -> labels.

The per-case steps are separate functions (`prepare_case`, `network_probabilities`,
`finish_case`, or all three as `predict_case`) so that callers such as the batch runner can
wrap them; `run_pipelined` overlaps reading/preprocessing and writing with the network's work.
"""

from __future__ import annotations

import sys
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from segkit.errors import UserError
from segkit.inference.acceleration import resolve_precision
from segkit.inference.cases import InputCase, load_case_images
from segkit.inference.model import LoadedModel
from segkit.inference.probabilities import probability_metadata, save_probabilities
from segkit.inference.regions import labels_for_plans
from segkit.inference.memory_backoff import window_logits
from segkit.inference.sliding_window import WindowSettings, logits_to_probabilities
from segkit.inference.writing import write_label_like
from segkit.io.image import Geometry
from segkit.preprocessing.orientation import LEGACY_WARNING, orientation_warnings

MAX_PENDING_WRITES = 2


@dataclass(frozen=True)
class InferenceOptions:
    """User-facing inference knobs (CLI flags)."""

    step: float = 0.5
    tta: bool = True
    tile_batch: int = 4
    save_probabilities: bool = False
    precision: str = "auto"


@dataclass
class PreparedCase:
    """A case after reading and preprocessing: network input plus what is needed to revert and write."""

    case_id: str
    data: np.ndarray
    properties: dict
    geometry: Geometry
    file_ending: str = ".nii.gz"
    reference: Path | None = None
    extra: dict = field(default_factory=dict)


@dataclass
class CasePrediction:
    """A finished case: label map and (optionally) probabilities on the input's voxel grid."""

    case_id: str
    labels: np.ndarray
    geometry: Geometry
    probabilities: np.ndarray | None = None
    file_ending: str = ".nii.gz"
    reference: Path | None = None
    extra: dict = field(default_factory=dict)


def window_settings(model: LoadedModel, options: InferenceOptions) -> WindowSettings:
    """Tiling of the model's configuration: patch, step, mirror axes (unless TTA is off), 2D slice axis."""
    entry = model.entry
    if not 0 < options.step <= 1:
        raise UserError(f"--step must be in (0, 1], got {options.step}")
    if options.tile_batch < 1:
        raise UserError(f"--tile-batch must be at least 1, got {options.tile_batch}")
    slice_axis = int(entry.get("slice_axis", 0)) if int(entry.get("spatial_dims", 3)) == 2 else None
    mirror = tuple(int(a) for a in entry.get("mirror_axes", [])) if options.tta else ()
    precision = resolve_precision(options.precision, model.device)
    tile_weights = str((entry.get("inference") or {}).get("tile_weights", "gaussian"))
    return WindowSettings(tuple(int(p) for p in entry["patch_size"]), options.step, mirror, options.tile_batch,
                          slice_axis, precision=precision, channels_last=True, tile_weights=tile_weights)


def input_orientation_warnings(model: LoadedModel, case_id: str, geometry: Geometry) -> list[str]:
    """Orientation warnings for one input (legacy model, orientation unlike training); printed to stderr too."""
    warnings = orientation_warnings(model.plans, geometry.direction)
    for message in warnings:
        if message != LEGACY_WARNING:   # load_model printed that one once
            print(f"warning: {case_id}: {message}", file=sys.stderr)
    return warnings


def prepare_case(model: LoadedModel, case_id: str, images: np.ndarray, geometry: Geometry,
                 file_ending: str = ".nii.gz", reference: Path | None = None) -> PreparedCase:
    """Preprocess (C, z, y, x) images of the given geometry (read from reference, if any) with the model's plans."""
    from segkit.preprocessing.pipeline import preprocess_images

    if images.shape[0] != model.num_channels:
        raise UserError(f"case {case_id!r} has {images.shape[0]} channels, the model needs {model.num_channels}")
    data, properties = preprocess_images(images, geometry.array_spacing, model.plans, model.configuration,
                                         direction=geometry.direction)
    warnings = input_orientation_warnings(model, case_id, geometry)
    return PreparedCase(case_id, data, properties, geometry, file_ending, reference,
                        {"warnings": warnings} if warnings else {})


def network_probabilities(model: LoadedModel, data: np.ndarray, options: InferenceOptions) -> np.ndarray:
    """Fold-averaged (K, z', y', x') float32 probabilities of preprocessed data."""
    settings = window_settings(model, options)
    # plans may ask for nnU-Net's fold ensembling (mean logits, then softmax) instead of mean probabilities
    average_logits = (model.entry.get("inference") or {}).get("fold_average") == "logits"
    total = None
    for state in model.fold_states:
        if len(model.fold_states) > 1:
            model.network.load_state_dict(state)
        logits = window_logits(model, data, settings)
        values = logits if average_logits else logits_to_probabilities(logits, model.label_mode)
        total = values if total is None else total.add_(values)
    if len(model.fold_states) > 1:
        total /= len(model.fold_states)
    return (logits_to_probabilities(total, model.label_mode) if average_logits else total).numpy()


def finish_case(model: LoadedModel, prepared: PreparedCase, probabilities: np.ndarray,
                keep_probabilities: bool = False) -> CasePrediction:
    """Revert preprocessed-space probabilities onto the input grid and turn them into labels."""
    from segkit.preprocessing.pipeline import revert_to_original

    original = revert_to_original(probabilities, prepared.properties, model.plans, model.configuration)
    labels = labels_for_plans(original, model.plans)
    if labels.shape != prepared.geometry.array_shape:
        raise RuntimeError(f"reverted shape {labels.shape} differs from the input {prepared.geometry.array_shape}")
    return CasePrediction(prepared.case_id, labels, prepared.geometry, original if keep_probabilities else None,
                          prepared.file_ending, prepared.reference, dict(prepared.extra))


def predict_case(model: LoadedModel, case_id: str, images: np.ndarray, geometry: Geometry,
                 options: InferenceOptions = InferenceOptions()) -> CasePrediction:
    """The whole per-case prediction in this thread (no I/O): images -> labels (+ probabilities)."""
    prepared = prepare_case(model, case_id, images, geometry)
    probabilities = network_probabilities(model, prepared.data, options)
    return finish_case(model, prepared, probabilities, options.save_probabilities)


def write_prediction(model: LoadedModel, prediction: CasePrediction, output_dir: Path) -> Path:
    """Write the label map (input geometry) and, when kept, the probabilities .npz; return the label path."""
    path = output_dir / f"{prediction.case_id}{prediction.file_ending}"
    if prediction.probabilities is not None:
        metadata = probability_metadata(prediction.case_id, prediction.geometry, model.plans, prediction.file_ending,
                                        configuration=model.configuration, folds=model.folds,
                                        model=str(model.model_dir),
                                        reference_image=str(prediction.reference) if prediction.reference else None)
        save_probabilities(output_dir / f"{prediction.case_id}.npz", prediction.probabilities, metadata)
    write_label_like(prediction.labels, prediction.geometry, path, prediction.reference)
    return path


def run_pipelined(items: Sequence[Any], load: Callable[[Any], Any], compute: Callable[[Any, Any], Any],
                  write: Callable[[Any, Any], Any], progress: Callable[[], None] | None = None) -> list[Any]:
    """For each item: load (background thread, one ahead), compute (this thread), write (background).

    Results of write are returned in item order; the first exception from any step is re-raised
    after pending work finishes.
    """
    results: list[Any] = [None] * len(items)
    pending: deque[tuple[int, Future]] = deque()
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="segkit-io") as pool:
        next_load = pool.submit(load, items[0]) if items else None
        for index, item in enumerate(items):
            loaded = next_load.result()
            next_load = pool.submit(load, items[index + 1]) if index + 1 < len(items) else None
            computed = compute(item, loaded)
            while len(pending) >= MAX_PENDING_WRITES:
                _collect(pending, results, progress)
            pending.append((index, pool.submit(write, item, computed)))
        while pending:
            _collect(pending, results, progress)
    return results


def _collect(pending: deque, results: list, progress: Callable[[], None] | None) -> None:
    """Wait for the oldest pending write and store its result."""
    index, future = pending.popleft()
    results[index] = future.result()
    if progress is not None:
        progress()


def predict_to_folder(model: LoadedModel, cases: Sequence[InputCase], output_dir: str | Path,
                      options: InferenceOptions = InferenceOptions(), show_progress: bool = True) -> list[Path]:
    """Predict every case into output_dir (label maps, optional .npz probabilities) with overlapped I/O."""
    from tqdm import tqdm

    window_settings(model, options)   # refuse bad options before anything is written
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)

    def load(case: InputCase) -> PreparedCase:
        images, geometry = load_case_images(case)
        return prepare_case(model, case.case_id, images, geometry, case.file_ending, case.images[0])

    def compute(case: InputCase, prepared: PreparedCase) -> tuple[PreparedCase, np.ndarray]:
        return prepared, network_probabilities(model, prepared.data, options)

    def write(case: InputCase, computed: tuple[PreparedCase, np.ndarray]) -> Path:
        prepared, probabilities = computed
        return write_prediction(model, finish_case(model, prepared, probabilities, options.save_probabilities),
                                output_dir)

    with tqdm(total=len(cases), desc="predict", unit="case", disable=not show_progress or None) as bar:
        return run_pipelined(list(cases), load, compute, write, bar.update)
