"""Run a per-case prediction function over a batch, robustly.

- every case's outputs are written atomically, the label map last;
- a case that fails (corrupt file, wrong channel count, unreadable series, ...) is recorded
  with its reason and the run goes on;
- report.json (report_part<K>.json for a shard) is rewritten atomically after every case,
  so a killed run loses no finished case; ``resume`` (--continue) skips cases whose outputs
  exist and are valid (readable, geometry matches the input).

The prediction itself is injected: ``predict(images (C, z, y, x) float32, geometry) ->
label map (z, y, x)`` in the input's geometry, or a ``CaseSteps`` whose prepare step runs
one case ahead in a background thread (reading + preprocessing overlap the network).
"""

from __future__ import annotations

import time
import traceback
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

from segkit.batch.cases import BatchCase, InputSpec, LoadedCase, load_case
from segkit.batch.outputs import (OutputRequest, finished_problem, output_names, remove_outputs,
                                  remove_stale_temporaries, write_outputs)
from segkit.batch.preview import MISSING_MESSAGE, preview_available
from segkit.batch.report import BatchReport, report_name, utc_now
from segkit.batch.sharding import select_part
from segkit.batch.statistics import batch_statistics_csv
from segkit.errors import UserError
from segkit.io.image import Geometry

PredictFn = Callable[[np.ndarray, Geometry], np.ndarray]
EXIT_OK, EXIT_CASES_FAILED = 0, 1


def _as_loaded(case: BatchCase, loaded: LoadedCase) -> LoadedCase:
    """Default prepare step: nothing to do."""
    return loaded


@dataclass(frozen=True)
class CaseSteps:
    """How a case is predicted: prepare (background thread, one case ahead), then compute (this thread).

    ``prepare(case, loaded)`` gets the read case and returns anything; ``compute(prepared)``
    returns the (z, y, x) label map in the input's geometry.
    """

    compute: Callable[[Any], np.ndarray]
    prepare: Callable[[BatchCase, LoadedCase], Any] = _as_loaded

    @classmethod
    def from_function(cls, predict: PredictFn) -> "CaseSteps":
        """Steps for a plain predict(images, geometry) -> labels function."""
        return cls(compute=lambda loaded: predict(loaded.images, loaded.geometry))


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
    text = str(err).strip()
    return f"{type(err).__name__}: {text.splitlines()[0]}" if text else type(err).__name__


def _entry(case: BatchCase, status: str, reason: str | None, seconds: float, names: dict[str, str],
           input_dir: Path) -> dict:
    """A case's report entry."""
    inputs = [str(p.relative_to(input_dir)) if p.is_relative_to(input_dir) else str(p) for p in case.sources]
    return {"case_id": case.case_id, "status": status, "reason": reason, "seconds": round(seconds, 3),
            "inputs": inputs, "outputs": names if status != "failed" else {}}


def _load_and_prepare(case: BatchCase, spec: InputSpec, steps: CaseSteps) -> tuple[LoadedCase, Any, float]:
    """Read and prepare one case (runs in the background thread); returns its seconds too."""
    start = time.perf_counter()
    try:
        loaded = load_case(case, spec)
        return loaded, steps.prepare(case, loaded), time.perf_counter() - start
    except Exception as err:
        err.segkit_seconds = time.perf_counter() - start  # so the report shows how long the failure took
        raise


def _finish(case: BatchCase, work: Future, request: OutputRequest, steps: CaseSteps, input_dir: Path) -> dict:
    """Wait for a case's prepared input, compute and write it; a failure becomes a 'failed' entry."""
    start = time.perf_counter()
    names = output_names(case, request)
    seconds = 0.0
    try:
        loaded, prepared, seconds = work.result()
        label = np.asarray(steps.compute(prepared))
        write_outputs(case, loaded, label, request, names)
        warnings = list((getattr(prepared, "extra", None) or {}).get("warnings", []))  # e.g. orientation
    # One bad case must not stop a hospital batch: whatever it raised is its recorded reason.
    except Exception as err:
        remove_outputs(request.output_dir, names)   # a failed case leaves nothing behind
        seconds += getattr(err, "segkit_seconds", 0.0)
        entry = _entry(case, "failed", _reason(err), seconds + time.perf_counter() - start, names, input_dir)
        if not isinstance(err, UserError):  # a bug or resource problem: keep where it happened
            entry["traceback"] = traceback.format_exc().strip().splitlines()[-12:]
        return entry
    entry = _entry(case, "ok", None, seconds + time.perf_counter() - start, names, input_dir)
    entry["warnings"] = warnings
    return entry


def _skip_entry(case: BatchCase, spec: InputSpec, request: OutputRequest, input_dir: Path) -> dict | None:
    """A 'skipped' entry when the case's outputs exist and are valid, else None."""
    start = time.perf_counter()
    names = output_names(case, request)
    if finished_problem(case, spec, request, names) is not None:
        return None
    return _entry(case, "skipped", "outputs exist and match the input geometry", time.perf_counter() - start,
                  names, input_dir)


def _progress(total: int):
    """A tqdm progress bar (None when tqdm is missing)."""
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, desc="predict", unit="case")


def _case_warnings(case: BatchCase, request: OutputRequest) -> list[str]:
    """Per-case notes that are not failures."""
    if request.dicom_seg and case.kind != "dicom":
        return ["--dicom-seg: not a DICOM input, no DICOM-SEG written"]
    return []


def _run_cases(todo: list[BatchCase], spec: InputSpec, request: OutputRequest, steps: CaseSteps,
               report: BatchReport, input_dir: Path, bar) -> None:
    """Predict the cases in order, reading and preparing the next one in the background."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="segkit-batch-read") as pool:
        upcoming = pool.submit(_load_and_prepare, todo[0], spec, steps) if todo else None
        for index, case in enumerate(todo):
            remove_stale_temporaries(request.output_dir, output_names(case, request))
            current = upcoming
            upcoming = pool.submit(_load_and_prepare, todo[index + 1], spec, steps) if index + 1 < len(todo) else None
            entry = _finish(case, current, request, steps, input_dir)
            entry["warnings"] = _case_warnings(case, request) + entry.get("warnings", [])
            report.add(entry)
            if bar is not None:
                bar.update()


def run_batch(cases: list[BatchCase], spec: InputSpec, request: OutputRequest, predict: PredictFn | CaseSteps,
              options: BatchOptions, input_dir: str | Path) -> BatchReport:
    """Run predict over this part's share of the (sorted) cases, writing outputs and the report."""
    input_dir = Path(input_dir)
    steps = predict if isinstance(predict, CaseSteps) else CaseSteps.from_function(predict)
    preview_missing = request.preview and not preview_available()
    if preview_missing:
        request = replace(request, preview=False)
    mine = select_part(sorted(cases, key=lambda c: c.case_id), options.num_parts, options.part_id)
    header = {**options.run_info, "input": str(input_dir.resolve()), "output": str(request.output_dir.resolve()),
              "part": {"part_id": options.part_id, "num_parts": options.num_parts}, "started": utc_now()}
    report = BatchReport(request.output_dir / report_name(options.part_id, options.num_parts), header,
                         num_cases=len(mine))
    if preview_missing:
        report.warn(MISSING_MESSAGE)
    report.save()
    bar = _progress(len(mine))
    todo = []
    for case in mine:
        skipped = _skip_entry(case, spec, request, input_dir) if options.resume else None
        if skipped is None:
            todo.append(case)
            continue
        skipped["warnings"] = _case_warnings(case, request)
        report.add(skipped)
        if bar is not None:
            bar.update()
    _run_cases(todo, spec, request, steps, report, input_dir, bar)
    if bar is not None:
        bar.close()
    if request.statistics:
        csv_name = "statistics.csv" if options.num_parts == 1 else f"statistics_part{options.part_id}.csv"
        batch_statistics_csv(request.output_dir, report.cases, request.output_dir / csv_name)
    report.save(finished=True)
    return report


def exit_code(report: BatchReport) -> int:
    """1 when any case failed, else 0 (whole-run user errors exit 2 before a report exists)."""
    return EXIT_CASES_FAILED if report.any_failed else EXIT_OK
