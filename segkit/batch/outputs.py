"""A case's output files: their names, writing them atomically, and checking a finished case.

Per case, in the output folder: ``CASE<ending>`` (label map, the input's geometry and file
format; ``.nii.gz`` for DICOM inputs), ``CASE.npz`` (probabilities, --save-probabilities),
``CASE_seg.dcm`` (DICOM-SEG, DICOM inputs with --dicom-seg), ``CASE_entropy.nii.gz`` and
``CASE_disagreement.nii.gz`` (--uncertainty: float32 maps in [0, 1]), ``CASE_stats.json``
(--statistics), ``CASE_preview.png`` (--preview), ``CASE_qc.png`` (the QC picture of
report.html, every folder run) and ``CASE_provenance.json`` (the input's
content digest and, for DICOM, its UIDs: `segkit.batch.provenance`). The label map is written
last, so its presence plus the requested extras marks a finished case; `finished_problem` keeps
it only when the label map is readable with the input's geometry, every extra parses (a
DICOM-SEG completely, referencing the current source series' study, series and instances) and
the provenance digest equals the input's as it is now.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from segkit.batch.cases import BatchCase, InputSpec, LoadedCase, case_series, input_files, input_geometry
from segkit.batch.preview import write_preview
from segkit.batch.provenance import input_digest, provenance_problem, provenance_record, write_provenance
from segkit.batch.statistics import label_statistics
from segkit.batch.thumbnail import write_qc_image
from segkit.errors import UserError
from segkit.io.dicom_series import SeriesInfo, series_identity
from segkit.io.image import Geometry, write_image
from segkit.jsonio import read_json, write_json


@dataclass(frozen=True)
class OutputRequest:
    """Which outputs to write, in which folder, and the label names they use."""

    output_dir: Path
    labels: dict
    segment_names: dict[int, str]
    dicom_seg: bool = False
    statistics: bool = False
    preview: bool = False
    probabilities: bool = False
    segment_coding: dict | None = None   # plans.json segment_coding (None: coded from the label names)
    provenance: bool = True      # CASE_provenance.json (cross-validation folders hold only what find-best reads)
    qc_image: bool = False       # CASE_qc.png for report.html (folder runs)
    uncertainty_maps: tuple[str, ...] = ()   # --uncertainty: "entropy" (+ "disagreement" with several folds)
    precision: str | None = None   # the inference arithmetic used (fp32/bf16/fp16), recorded in the DICOM-SEG


def output_names(case: BatchCase, request: OutputRequest) -> dict[str, str]:
    """File names (relative to the output folder) of the outputs this case should get."""
    names = {"label": f"{case.case_id}{case.file_ending}"}
    if request.dicom_seg and case.kind == "dicom":
        names["dicom_seg"] = f"{case.case_id}_seg.dcm"
    if request.statistics:
        names["statistics"] = f"{case.case_id}_stats.json"
    if request.preview:
        names["preview"] = f"{case.case_id}_preview.png"
    if request.qc_image:
        names["qc"] = f"{case.case_id}_qc.png"
    if request.probabilities:
        names["probabilities"] = f"{case.case_id}.npz"
    for kind in request.uncertainty_maps:   # float maps: NIfTI whatever the input format
        names[kind] = f"{case.case_id}_{kind}.nii.gz"
    if request.provenance:
        names["provenance"] = f"{case.case_id}_provenance.json"
    return names


def remove_stale_temporaries(output_dir: Path, names: dict[str, str]) -> None:
    """Delete temp files a killed run left behind for these outputs (atomic_path names them .NAME.*)."""
    if not output_dir.is_dir():
        return
    for name in names.values():
        for stale in output_dir.glob(f".{name}.*"):
            stale.unlink(missing_ok=True)


def _label_problem(path: Path, geometry: Geometry) -> str | None:
    """Why an existing label file is not a valid output for this geometry (None when it is)."""
    try:
        image = sitk.ReadImage(os.fspath(path))
        sitk.GetArrayViewFromImage(image)
    except RuntimeError:
        return f"{path.name} is unreadable"
    problem = geometry.mismatch(Geometry.of_sitk(image))
    return f"{path.name}: {problem}" if problem else None


def _extra_problem(key: str, path: Path, reference: SeriesInfo | None) -> str | None:
    """Why an existing extra output is unusable (None when it parses; a DICOM-SEG must match its source)."""
    try:
        if key == "statistics":
            read_json(path, "case statistics")
        elif key == "dicom_seg":
            from segkit.io.dicom_seg import seg_problem

            return seg_problem(path, reference) if reference is not None else f"{path.name}: no source series"
        elif path.stat().st_size == 0:
            return f"{path.name} is empty"
    except Exception as err:  # any parse failure means "recompute", never a crash
        return f"{path.name} is unreadable ({type(err).__name__})"
    return None


def finished_problem(case: BatchCase, spec: InputSpec, request: OutputRequest, names: dict[str, str]) -> str | None:
    """None when every requested output exists and was made from this very input, else the first reason it is not."""
    for name in names.values():
        if not (request.output_dir / name).is_file():
            return f"{name} missing"
    try:
        series = case_series(case, spec)
        if "provenance" in names:
            problem = provenance_problem(request.output_dir / names["provenance"], input_digest(input_files(case, spec)))
            if problem:
                return problem
        for key, name in names.items():
            problem = None if key in ("label", "provenance") else _extra_problem(
                key, request.output_dir / name, series[0] if series else None)
            if problem:
                return problem
        geometry = input_geometry(case, spec)
    except UserError as err:
        return f"input unreadable ({err})"
    return _label_problem(request.output_dir / names["label"], geometry)


def outputs_valid(case: BatchCase, spec: InputSpec, request: OutputRequest) -> bool:
    """True when the case's requested outputs are finished and still belong to its input (see finished_problem)."""
    return finished_problem(case, spec, request, output_names(case, request)) is None


def write_outputs(case: BatchCase, loaded: LoadedCase, label: np.ndarray, request: OutputRequest,
                  names: dict[str, str], probabilities: np.ndarray | None = None,
                  probability_metadata: dict | None = None, uncertainty: dict | None = None,
                  maps: dict[str, np.ndarray] | None = None) -> None:
    """Write every requested output of a case atomically, the label map last; on any failure remove them all.

    A failed case leaves nothing behind (no statistics or preview without a label map, no
    probabilities already written), so the folder never holds a half case.
    """
    try:
        _write_all(case, loaded, label, request, names, probabilities, probability_metadata, uncertainty, maps or {})
    except BaseException:
        remove_outputs(request.output_dir, names)
        raise


def remove_outputs(output_dir: Path, names: dict[str, str]) -> None:
    """Delete a case's outputs (and their temporaries) from the output folder."""
    for name in names.values():
        (output_dir / name).unlink(missing_ok=True)
    remove_stale_temporaries(output_dir, names)


def _write_all(case: BatchCase, loaded: LoadedCase, label: np.ndarray, request: OutputRequest,
               names: dict[str, str], probabilities: np.ndarray | None,
               probability_metadata: dict | None, uncertainty: dict | None, maps: dict[str, np.ndarray]) -> None:
    """The writes of write_outputs, in order."""
    if label.shape != loaded.geometry.array_shape:
        raise ValueError(f"prediction shape {label.shape} differs from the input's {loaded.geometry.array_shape}")
    out = request.output_dir
    if "probabilities" in names and probabilities is not None:
        from segkit.inference.probabilities import save_probabilities

        save_probabilities(out / names["probabilities"], probabilities, probability_metadata or {})
    for kind in request.uncertainty_maps:
        if maps.get(kind) is None:
            raise ValueError(f"--uncertainty: the model gave no {kind} map")
        write_image(maps[kind].astype(np.float32, copy=False), loaded.geometry, out / names[kind])
    if "statistics" in names:
        stats = label_statistics(case.case_id, label, loaded.geometry, request.labels, uncertainty)
        write_json(out / names["statistics"], stats)
    if "preview" in names:
        assert loaded.images is not None                        # kept for the preview (pipeline.load)
        write_preview(loaded.images[0], label, loaded.geometry, request.segment_names, out / names["preview"],
                      title=case.case_id)
    if "qc" in names:
        assert loaded.images is not None                        # channel 0 kept for the QC picture
        write_qc_image(loaded.images[0], label, loaded.geometry, sorted(request.segment_names), out / names["qc"])
    if "dicom_seg" in names:
        from segkit.io.dicom_seg import segments_from_labels, write_dicom_seg

        assert loaded.dicom_reference is not None              # DICOM-SEG is only offered for DICOM inputs
        write_dicom_seg(label, loaded.dicom_reference, segments_from_labels(request.labels), out / names["dicom_seg"],
                        precision=request.precision, frame_order=loaded.frame_order,
                        coding=request.segment_coding)
    if "provenance" in names:
        identity = series_identity(loaded.dicom_reference) if loaded.dicom_reference is not None else None
        write_provenance(out / names["provenance"], provenance_record(
            case.case_id, loaded.input_files, loaded.input_sha256 or input_digest(loaded.input_files), identity,
            tuple(info.uid for info in loaded.dicom_series)))
    from segkit.inference.writing import write_label_like

    # for file inputs, reuse the input's own header (bit-exact geometry)
    reference = case.sources[0] if case.kind == "files" else None
    write_label_like(label.astype(np.uint8 if label.max(initial=0) < 256 else np.int16), loaded.geometry,
                     out / names["label"], reference)
