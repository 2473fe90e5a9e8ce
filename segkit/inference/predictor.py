"""The per-case prediction steps of a model ensemble: prepare -> network -> finish.

A `ModelEnsemble` is what `-m` names once resolved (`segkit.inference.resolve`): one or two
configurations (find-best's choice), each a `LoadedModel` with its folds, plus the
post-processing decided for exactly that model. Every way into prediction (the CLI on a file,
folder, dataset or DICOM study, `segkit.Predictor`, cross-validation predictions) runs these
three steps through `segkit.batch.pipeline`:

1. `prepare` (background thread): check channels, preprocess with each stage's plans;
2. `compute` (this thread): sliding window per fold, fold-averaged probabilities per stage;
3. `finish` (background thread): revert to the input grid slab by slab, average the members,
   labels, post-processing.

A cascade member (`3d_cascade_fullres`, `LoadedModel.previous` = its `3d_lowres` with the same
folds) makes its previous stage a stage of the ensemble too: the stages run in order, each
once per case (a previous stage that is also a member is not computed twice); the previous
stage's label map on the input grid (no post-processing, as its cross-validation predictions
the cascade trained on) is brought into the cascade's preprocessed space and appended as
one-hot channels (`segkit.preprocessing.previous_stage`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch

from segkit import logs
from segkit.errors import UserError
from segkit.inference.acceleration import resolve_precision
from segkit.inference.memory_backoff import window_logits
from segkit.inference.model import LoadedModel
from segkit.inference.revert import MemberOutput, labels_from_aligned, labels_on_input_grid, map_on_input_grid
from segkit.inference.sliding_window import ACCUMULATIONS, WindowSettings
from segkit.inference.uncertainty import normalised_entropy, structure_scores, summary
from segkit.io.image import Geometry
from segkit.planning.mirroring import inference_swap
from segkit.plans import LabelCoding, Plans, ensemble_fields_of, previous_stage_classes
from segkit.preprocessing.input_ranges import range_warnings
from segkit.preprocessing.oblique import AxisAlignment, aligned_grid, images_onto_grid
from segkit.preprocessing.orientation import (
    LEGACY_WARNING,
    axis_alignment_limit,
    needs_axis_alignment,
    oblique_degrees,
    orientation_warnings,
    reorientation_for,
)
from segkit.preprocessing.previous_stage import one_hot_previous, previous_labels_into

SOFTMAX_CHUNK_VOXELS = 1 << 22   # voxels per in-place softmax chunk (bounded temporary memory; a multiple of 4096)
# plans fields every member of an ensemble must share (the meaning of the output channels)
@dataclass(frozen=True)
class InferenceOptions:
    """User-facing inference knobs (CLI flags / Predictor arguments)."""

    step: float = 0.5
    tta: bool = True
    tile_batch: int = 4
    save_probabilities: bool = False
    precision: str = "auto"
    uncertainty: bool = False    # per-voxel maps and per-structure scores (segkit.inference.uncertainty)
    backend: str = "torch"   # torch, onnxruntime, openvino or auto (segkit.inference.backends)


@dataclass
class PreparedCase:
    """A case after preprocessing: each stage's network input and properties, plus the input geometry."""

    case_id: str
    data: list[np.ndarray]
    properties: list[dict]
    geometry: Geometry
    extra: dict = field(default_factory=dict)   # "warnings": per-case notes for the report (e.g. orientation)
    alignment: AxisAlignment | None = None      # set when the input was resampled onto the axis-aligned grid


@dataclass
class CasePrediction:
    """A finished case: label map (post-processed) and, when asked, the mean probabilities on the input grid."""

    case_id: str
    labels: np.ndarray
    geometry: Geometry
    probabilities: np.ndarray | None = None
    extra: dict = field(default_factory=dict)


def window_settings(model: LoadedModel, options: InferenceOptions) -> WindowSettings:
    """Tiling of the model's configuration: patch, step, mirror axes (unless TTA is off), 2D slice axis."""
    entry = model.entry
    if not 0 < options.step <= 1:
        raise UserError(f"--step must be in (0, 1], got {options.step}")
    if options.tile_batch < 1:
        raise UserError(f"--tile-batch must be at least 1, got {options.tile_batch}")
    slice_axis = entry.slice_axis
    mirror = entry.mirror_axes if options.tta else ()
    torch_backend = model.backend == "torch"
    # an ONNX backend runs in its own precision (model.backend_precision): no torch autocast around it
    precision = resolve_precision(options.precision, model.device) if torch_backend else "fp32"
    tile_weights, accumulation = entry.tile_weights, entry.accumulation
    if accumulation not in ACCUMULATIONS:
        raise UserError(f"plans inference accumulation {accumulation!r} is not one of {', '.join(ACCUMULATIONS)}",
                        model.model_dir)
    swap = inference_swap(model.plans, entry) if mirror else None
    return WindowSettings(entry.patch_size, options.step, mirror, options.tile_batch,
                          slice_axis, precision=precision, channels_last=torch_backend, tile_weights=tile_weights,
                          accumulation=accumulation, swap_axis=swap[0] if swap else None,
                          swap_order=swap[1] if swap else ())


def input_orientation_warnings(model: LoadedModel, case_id: str, geometry: Geometry) -> list[str]:
    """Orientation warnings for one input (legacy model, orientation unlike training); printed to stderr too."""
    warnings = orientation_warnings(model.plans, geometry.direction)
    for message in warnings:
        if message != LEGACY_WARNING:   # load_model printed that one once
            logs.warning(f"{case_id}: {message}", event="case_warning", case_id=case_id)
    return warnings


def probabilities_in_place(logits: torch.Tensor, label_mode: str) -> torch.Tensor:
    """Softmax over outputs (sigmoid for region plans) of (K, z, y, x) logits, overwriting them chunk by chunk."""
    if label_mode == "sigmoid":
        return logits.sigmoid_()
    # chunks of the flattened voxels, a multiple of the vector width: with one thread each voxel
    # goes through the same kernel path as in one whole-volume softmax (bit-identical); with
    # several threads torch's own split already varies the last bit from run to run of the same volume
    flat = logits.contiguous().view(logits.shape[0], -1)
    for start in range(0, flat.shape[1], SOFTMAX_CHUNK_VOXELS):
        chunk = flat[:, start:start + SOFTMAX_CHUNK_VOXELS]
        chunk.copy_(torch.softmax(chunk, dim=0))
    return flat.view(logits.shape)


def network_probabilities(model: LoadedModel, data: np.ndarray, options: InferenceOptions) -> np.ndarray:
    """Fold-averaged (K, z', y', x') float32 probabilities of preprocessed data."""
    return probabilities_and_fold_entropy(model, data, options)[0]


def half_rounded(values: torch.Tensor, settings: WindowSettings) -> torch.Tensor:
    """values rounded to float16 (kept in float32) under nnU-Net's float16 accumulation, whose fold sum is float16."""
    return values.copy_(values.half()) if settings.accumulation == "fp16" else values


def probabilities_and_fold_entropy(model: LoadedModel, data: np.ndarray, options: InferenceOptions
                                   ) -> tuple[np.ndarray, np.ndarray | None]:
    """Fold-averaged probabilities, and with options.uncertainty and several folds the folds' mean normalised
    entropy (z', y', x') (what their disagreement is measured against), else None."""
    settings = window_settings(model, options)
    # plans may ask for nnU-Net's fold ensembling (mean logits, then softmax) instead of mean probabilities
    average_logits = model.entry.averages_fold_logits
    track = options.uncertainty and len(model.folds) > 1
    total: torch.Tensor | None = None
    entropy_sum: np.ndarray | None = None
    for network in model.fold_networks():
        logits = window_logits(model, data, settings, network)
        values = logits if average_logits else probabilities_in_place(logits, model.label_mode)
        if track:
            fold = probabilities_in_place(logits.clone(), model.label_mode) if average_logits else values
            entropy = normalised_entropy(fold.numpy(), model.label_mode)
            entropy_sum = entropy if entropy_sum is None else np.add(entropy_sum, entropy, out=entropy_sum)
        total = values if total is None else half_rounded(total.add_(values), settings)
        del logits, values
    assert total is not None                                    # a model has at least one fold
    if len(model.folds) > 1:
        total = half_rounded(total.div_(len(model.folds)), settings)
    if entropy_sum is not None:
        entropy_sum /= len(model.folds)
    return (probabilities_in_place(total, model.label_mode) if average_logits else total).numpy(), entropy_sum


def map_from_aligned(volume: np.ndarray, alignment: AxisAlignment) -> np.ndarray:
    """A (z, y, x) map on the axis-aligned grid, linearly interpolated onto the input's grid (0 outside it)."""
    # one sigmoid "region" so that revert's interpolation fills 0 outside the aligned grid; its labels are unused
    one_channel = LabelCoding("sigmoid", {"map": [1]}, [1])
    _, mapped = labels_from_aligned(volume[None], alignment, one_channel, np.float32)
    assert mapped is not None                                   # float32 was asked for
    return mapped[0]


def same_stage(a: LoadedModel, b: LoadedModel) -> bool:
    """Whether two loaded models compute the same thing (one configuration of one folder, same folds and checkpoint)."""
    return a is b or (a.model_dir.resolve() == b.model_dir.resolve() and a.configuration == b.configuration
                      and list(a.folds) == list(b.folds) and a.checkpoint == b.checkpoint)


def stage_order(members: list[LoadedModel]) -> list[LoadedModel]:
    """Every model a case needs, each once, previous stages before the cascade stages that read them."""
    order: list[LoadedModel] = []

    def add(model: LoadedModel) -> None:
        if model.previous is not None:
            add(model.previous)
        if not any(same_stage(model, stage) for stage in order):
            order.append(model)

    for member in members:
        add(member)
    return order


def previous_stage_input(previous: LoadedModel, probabilities: np.ndarray, previous_properties: dict,
                         stage: LoadedModel, stage_properties: dict) -> np.ndarray:
    """The previous stage's label map on the input grid, on the cascade stage's preprocessed grid, one-hot."""
    labels, _ = labels_on_input_grid([MemberOutput(probabilities, previous_properties, previous.plans,
                                                   previous.configuration)], previous.plans)
    return one_hot_previous(previous_labels_into(labels, stage_properties), previous_stage_classes(stage.plans))


@dataclass
class ModelEnsemble:
    """One or more configurations (members) whose probabilities are averaged, and their post-processing."""

    members: list[LoadedModel]
    options: InferenceOptions = InferenceOptions()
    postprocessing: dict | None = None
    identity: dict = field(default_factory=dict)
    calibration: dict | None = None      # the review threshold (uncertainty_calibration.json), single-model runs
    stages: list[LoadedModel] = field(init=False, default_factory=list)   # what runs per case, in order
    member_stages: list[int] = field(init=False, default_factory=list)   # the stage each member's output is

    def __post_init__(self) -> None:
        """Refuse members with different outputs or channels, and bad options, before any case is read."""
        first = self.members[0]
        for member in self.members[1:]:
            ours, theirs = ensemble_fields_of(first.plans), ensemble_fields_of(member.plans)
            for key, value in ours.items():
                if theirs[key] != value:
                    raise UserError(f"ensemble members {first.configuration} and {member.configuration} differ in "
                                    f"plans {key!r}", member.model_dir)
        self.stages = stage_order(self.members)
        self.member_stages = [next(i for i, stage in enumerate(self.stages) if same_stage(member, stage))
                              for member in self.members]
        for stage in self.stages:
            window_settings(stage, self.options)

    @property
    def plans(self) -> Plans:
        """The plans of the first member (labels and outputs are shared by all)."""
        return self.members[0].plans

    @property
    def num_channels(self) -> int:
        """Image channels per case."""
        return self.members[0].num_channels

    @property
    def configurations(self) -> list[str]:
        """Member configuration names."""
        return [member.configuration for member in self.members]

    @property
    def device(self) -> torch.device:
        """Where the networks run."""
        return self.members[0].device

    def precision(self) -> str:
        """The inference arithmetic every stage uses (--precision auto resolved for the device, or the ONNX backend's)."""
        first = self.members[0]
        if first.backend != "torch" and first.backend_precision:
            return first.backend_precision
        return resolve_precision(self.options.precision, self.device)

    def describe(self) -> str:
        """'3d_fullres folds 0, 1' or '2d folds 0 + 3d_fullres folds 0' for messages."""
        return " + ".join(f"{m.configuration} folds {', '.join(m.folds)}" for m in self.members)

    def axis_alignment(self, geometry: Geometry) -> AxisAlignment | None:
        """The axis-aligned grid to resample an input onto, when it is more oblique than every stage's training data.

        The grid has the finest target spacing of the stages per axis (the plan's spacing for one
        configuration), so each stage's own resampling is the identity or a downsampling.
        """
        from segkit.preprocessing.pipeline import case_target_spacing

        if not all(needs_axis_alignment(stage.plans, geometry.direction) for stage in self.stages):
            return None
        spacing = reorientation_for(geometry.direction).values(list(geometry.array_spacing))
        targets = [case_target_spacing(stage.entry, spacing)
                   for stage in self.stages]
        grid = aligned_grid(geometry, [min(target[axis] for target in targets) for axis in range(3)])
        limit = min(float(axis_alignment_limit(stage.plans) or 0.0) for stage in self.stages)
        return AxisAlignment(geometry, grid, oblique_degrees(geometry.direction), limit)

    def align(self, case_id: str, images: np.ndarray, alignment: AxisAlignment) -> tuple[np.ndarray, dict]:
        """Images resampled onto the alignment's grid, and the report's record of it (also logged as a warning)."""
        from segkit.preprocessing.pipeline import resampling_settings

        start = time.perf_counter()
        order, _ = resampling_settings(self.stages[0].entry)
        aligned = images_onto_grid(images, alignment.input_geometry, alignment.aligned_geometry, order)
        record = alignment.to_json() | {"seconds_to_grid": round(time.perf_counter() - start, 3)}
        note = (f"input is {alignment.oblique_degrees:.1f} degrees oblique to the patient axes (the model's limit "
                f"{alignment.limit_degrees:.1f}, from its training images): resampled onto an axis-aligned grid for "
                "the network, outputs mapped back onto the input's grid")
        logs.warning(f"{case_id}: {note}", event="case_warning", case_id=case_id)
        return aligned, {"note": note, "record": record}

    def prepare(self, case_id: str, images: np.ndarray, geometry: Geometry) -> PreparedCase:
        """Preprocess (C, z, y, x) images of the given geometry with each member's plans.

        An input more oblique than the training images is first resampled onto the canonical
        axis-aligned grid (`axis_alignment`); `finish` maps the outputs back onto its own grid.
        """
        from segkit.preprocessing.pipeline import preprocess_images

        if images.shape[0] != self.num_channels:
            raise UserError(f"case {case_id!r} has {images.shape[0]} channel(s), the model needs {self.num_channels}")
        data, properties, warnings, extra = [], [], [], {}
        alignment = self.axis_alignment(geometry)
        network_images, network_geometry = images, geometry
        if alignment is not None:
            network_images, resampling = self.align(case_id, images, alignment)
            network_geometry = alignment.aligned_geometry
            warnings.append(resampling["note"])
            extra["axis_alignment"] = resampling["record"]
        for stage in self.stages:
            # every stage reorients to its plans' canonical frame; revert maps each back exactly
            stage_data, stage_properties = preprocess_images(network_images, network_geometry.array_spacing, stage.plans,
                                                             stage.configuration, direction=network_geometry.direction)
            data.append(stage_data)
            properties.append(stage_properties)
            warnings += [w for w in input_orientation_warnings(stage, case_id, geometry) if w not in warnings]
            for message in range_warnings(stage.plans, images, geometry.array_spacing, geometry.direction):
                if message not in warnings:
                    warnings.append(message)
                    logs.warning(f"{case_id}: {message}", event="case_warning", case_id=case_id)
        if warnings:
            extra["warnings"] = warnings
        return PreparedCase(case_id, data, properties, geometry, extra, alignment)

    def compute(self, prepared: PreparedCase) -> list[np.ndarray]:
        """Each member's fold-averaged probabilities in its preprocessed space (the network's work).

        Stages run in order; a cascade stage first gets its previous stage's segmentation as extra channels.
        """
        outputs: list[np.ndarray] = []
        fold_entropies: list[np.ndarray | None] = []
        for index, stage in enumerate(self.stages):
            data = prepared.data[index]
            if stage.previous is not None:
                source = next(i for i, s in enumerate(self.stages[:index]) if same_stage(stage.previous, s))
                extra = previous_stage_input(self.stages[source], outputs[source], prepared.properties[source],
                                             stage, prepared.properties[index])
                data = np.concatenate([data, extra])
            probabilities, fold_entropy = probabilities_and_fold_entropy(stage, data, self.options)
            outputs.append(probabilities)
            fold_entropies.append(fold_entropy)
            del data
        prepared.data = []   # the network inputs are no longer needed: free them before the revert
        if self.options.uncertainty:
            prepared.extra["fold_entropy"] = [fold_entropies[i] for i in self.member_stages]
        return [outputs[i] for i in self.member_stages]

    def finish(self, prepared: PreparedCase, probabilities: list[np.ndarray],
               keep_probabilities: npt.DTypeLike | None = None) -> CasePrediction:
        """Revert onto the input grid (slab-wise), average members, labels, post-processing."""
        from segkit.models.postprocessing import apply_postprocessing

        outputs = [MemberOutput(p, prepared.properties[stage], m.plans, m.configuration)
                   for p, stage, m in zip(probabilities, self.member_stages, self.members)]
        uncertain = self.options.uncertainty
        keep = np.float32 if uncertain else keep_probabilities
        extra = {key: value for key, value in prepared.extra.items() if key != "fold_entropy"}
        if prepared.alignment is None:
            labels, kept = labels_on_input_grid(outputs, self.plans, keep)
        else:
            start = time.perf_counter()
            _, aligned = labels_on_input_grid(outputs, self.plans, np.float32)   # on the axis-aligned grid
            assert aligned is not None                                             # float32 was asked for
            labels, kept = labels_from_aligned(aligned, prepared.alignment, self.plans.label_coding, keep)
            extra["axis_alignment"] = dict(extra["axis_alignment"],
                                           seconds_back=round(time.perf_counter() - start, 3))
        if labels.shape != prepared.geometry.array_shape:
            raise RuntimeError(f"reverted shape {labels.shape} differs from the input {prepared.geometry.array_shape}")
        if self.postprocessing:
            labels = apply_postprocessing(labels, self.postprocessing)
        if uncertain:
            assert kept is not None                             # float32 probabilities were asked for
            extra.update(self._uncertainty(kept, labels, outputs, prepared.extra.get("fold_entropy") or [],
                                           prepared.alignment))
            kept = kept.astype(keep_probabilities, copy=False) if keep_probabilities is not None else None
        return CasePrediction(prepared.case_id, labels, prepared.geometry, kept, extra)

    def _uncertainty(self, probabilities: np.ndarray, labels: np.ndarray, outputs: list[MemberOutput],
                     fold_entropy: list[np.ndarray | None], alignment: AxisAlignment | None = None) -> dict:
        """The per-voxel maps (entropy; disagreement when every member has several folds) and the report entry."""
        label_mode = self.members[0].label_mode
        maps = {"entropy": normalised_entropy(probabilities, label_mode)}
        if fold_entropy and all(e is not None for e in fold_entropy):
            reverted = [map_on_input_grid(e, o.properties, o.plans, o.configuration)
                        for e, o in zip(fold_entropy, outputs) if e is not None]
            mean_fold = reverted[0] if len(reverted) == 1 else np.mean(reverted, axis=0)
            if alignment is not None:   # the networks saw the axis-aligned grid: bring the map onto the input's
                mean_fold = map_from_aligned(mean_fold, alignment)
            maps["disagreement"] = np.clip(maps["entropy"] - mean_fold, 0.0, 1.0)
        structures = structure_scores(probabilities, labels, self.plans, maps["entropy"], maps.get("disagreement"))
        folds = max(len(m.folds) for m in self.members)
        return {"uncertainty": summary(structures, self.calibration, folds), "uncertainty_maps": maps}

    def predict(self, case_id: str, images: np.ndarray, geometry: Geometry,
                keep_probabilities: npt.DTypeLike | None = None) -> CasePrediction:
        """All three steps in this thread (no file I/O)."""
        prepared = self.prepare(case_id, images, geometry)
        return self.finish(prepared, self.compute(prepared), keep_probabilities)

    def probability_metadata(self, prediction: CasePrediction, file_ending: str,
                             reference: Path | None = None) -> dict:
        """Metadata stored next to saved probabilities."""
        from segkit.inference.probabilities import probability_metadata

        first = self.members[0]
        extra = {"configuration": first.configuration, "folds": list(first.folds), "model": str(first.model_dir),
                 "reference_image": str(reference) if reference else None}
        if len(self.members) > 1:
            extra["ensemble_of"] = [f"{m.configuration}:{','.join(m.folds)}" for m in self.members]
        return probability_metadata(prediction.case_id, prediction.geometry, self.plans, file_ending, **extra)


def predict_case(model: LoadedModel, case_id: str, images: np.ndarray, geometry: Geometry,
                 options: InferenceOptions = InferenceOptions()) -> CasePrediction:
    """One case with one model, no post-processing and no file I/O (probabilities kept with save_probabilities)."""
    keep = np.float32 if options.save_probabilities else None
    return ModelEnsemble([model], options).predict(case_id, images, geometry, keep)
