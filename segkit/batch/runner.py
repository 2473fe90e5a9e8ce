"""Run a per-case prediction function over a batch, robustly.

- every case's outputs are written atomically, the label map last;
- a case that fails (corrupt file, wrong channel count, unreadable series, ...) is recorded
  with its reason and the run goes on;
- report.json (report_part<K>.json for a shard) is rewritten atomically after every case,
  so a killed run loses no finished case; ``resume`` (--continue) skips cases whose outputs
  exist and are valid (readable, geometry matches the input).

The prediction itself is injected: ``predict(images (C, z, y, x) float32, geometry) ->
label map (z, y, x)`` in the input's geometry.
"""

from __future__ import annotations

import logging
import time
import traceback
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np

from segkit.batch.cases import BatchCase, InputSpec, load_case
from segkit.batch.outputs import OutputRequest, finished_problem, output_names, remove_stale_temporaries, write_outputs
from segkit.batch.preview import MISSING_MESSAGE, preview_available
from segkit.batch.report import BatchReport, report_name, utc_now
from segkit.batch.sharding import select_part
from segkit.batch.statistics import batch_statistics_csv
from segkit.errors import UserError
from segkit.io.image import Geometry

PredictFn = Callable[[np.ndarray, Geometry], np.ndarray]
EXIT_OK, EXIT_CASES_FAILED = 0, 1
log = logging.getLogger("segkit.batch")


@dataclass(frozen=True)
class BatchOptions:
    """How to run the batch: resume, sharding, and a description of the run for the report."""

    resume: bool = False
    num_parts: int = 1
    part_id: int = 0
    run_info: dict = field(default_factory=dict)


def _reason(err: BaseException) -> str:
    """One-line failure reason: a UserError's message, else the exception type and message."""
    if isinstance(err, UserError):
        return str(err)
    return f"{type(err).__name__}: {str(err).strip().splitlines()[0] if str(err).strip() else ''}".rstrip(": ")


def _entry(case: BatchCase, status: str, reason: str | None, seconds: float, names: dict[str, str],
           input_dir: Path, warnings: list[str]) -> dict:
    """A case's report entry."""
    inputs = [str(p.relative_to(input_dir)) if p.is_relative_to(input_dir) else str(p) for p in case.sources]
    return {"case_id": case.case_id, "status": status, "reason": reason, "seconds": round(seconds, 3),
            "inputs": inputs, "outputs": names if status != "failed" else {}, "warnings": warnings}


def run_case(case: BatchCase, spec: InputSpec, request: OutputRequest, predict: PredictFn,
             names: dict[str, str]) -> None:
    """Load, predict and write one case. Raises on failure."""
    loaded = load_case(case, spec)
    label = np.asarray(predict(loaded.images, loaded.geometry))
    write_outputs(case, loaded, label, request, names)


def _process(case: BatchCase, spec: InputSpec, request: OutputRequest, predict: PredictFn,
             options: BatchOptions, input_dir: Path) -> dict:
    """Skip, run or fail one case; never raises for a case-level problem."""
    start = time.perf_counter()
    names = output_names(case, request)
    warnings = ["--dicom-seg: not a DICOM input, no DICOM-SEG written"] if (
        request.dicom_seg and case.kind != "dicom") else []
    if options.resume and finished_problem(case, spec, request, names) is None:
        return _entry(case, "skipped", "outputs exist and match the input geometry",
                      time.perf_counter() - start, names, input_dir, warnings)
    remove_stale_temporaries(request.output_dir, names)
    try:
        run_case(case, spec, request, predict, names)
    # One bad case must not stop a hospital batch: whatever it raised is its recorded reason.
    except Exception as err:
        log.debug("case %s failed:\n%s", case.case_id, traceback.format_exc())
        return _entry(case, "failed", _reason(err), time.perf_counter() - start, names, input_dir, warnings)
    return _entry(case, "ok", None, time.perf_counter() - start, names, input_dir, warnings)


def _progress(cases: list[BatchCase]):
    """A tqdm progress bar over the cases (plain iteration when tqdm is missing)."""
    try:
        from tqdm import tqdm
    except ImportError:
        return cases
    return tqdm(cases, desc="predict", unit="case")


def run_batch(cases: list[BatchCase], spec: InputSpec, request: OutputRequest, predict: PredictFn,
              options: BatchOptions, input_dir: str | Path) -> BatchReport:
    """Run predict over this part's share of the (sorted) cases, writing outputs and the report."""
    input_dir = Path(input_dir)
    preview_missing = request.preview and not preview_available()
    if preview_missing:
        request = replace(request, preview=False)
    mine = select_part(sorted(cases, key=lambda c: c.case_id), options.num_parts, options.part_id)
    header = {**options.run_info, "input": str(input_dir), "output": str(request.output_dir),
              "part": {"part_id": options.part_id, "num_parts": options.num_parts}, "started": utc_now()}
    report = BatchReport(request.output_dir / report_name(options.part_id, options.num_parts), header,
                         num_cases=len(mine))
    if preview_missing:
        report.warn(MISSING_MESSAGE)
    report.save()
    for case in _progress(mine):
        report.add(_process(case, spec, request, predict, options, input_dir))
    if request.statistics:
        csv_name = "statistics.csv" if options.num_parts == 1 else f"statistics_part{options.part_id}.csv"
        batch_statistics_csv(request.output_dir, report.cases, request.output_dir / csv_name)
    report.save(finished=True)
    return report


def exit_code(report: BatchReport) -> int:
    """1 when any case failed, else 0 (whole-run user errors exit 2 before a report exists)."""
    return EXIT_CASES_FAILED if report.any_failed else EXIT_OK
