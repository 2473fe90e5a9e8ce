"""The one per-case prediction pipeline: read -> prepare -> network -> finish -> write, cases isolated.

Every way into prediction runs cases through `run_pipelined`: the next case is read and
preprocessed in a background thread while the network works on the current one, and the
previous case is reverted, labelled, post-processed and written in the background too
(read-ahead / write-behind). A step that fails makes only its case fail; `stop_on_error`
(`--fail-fast`) starts no further case.

`predict_cases` adds what a folder run needs: the report (report.json, rewritten atomically
after every case, so a killed run loses no finished case), `--continue` (skip cases whose
outputs exist and are valid), sharding, statistics, previews, DICOM-SEG and saved
probabilities. The model side is any *engine* with ``prepare(case_id, images, geometry)``,
``compute(prepared)``, ``finish(prepared, computed, keep_probabilities)`` and
``probability_metadata(prediction, file_ending, reference)``; `segkit.inference.predictor.
ModelEnsemble` is the real one.
"""

from __future__ import annotations

import sys
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from segkit import logs
from segkit.batch.cases import BatchCase, InputSpec, load_case
from segkit.batch.html_report import html_name, write_html_report
from segkit.batch.outputs import OutputRequest, finished_problem, output_names, remove_stale_temporaries, write_outputs
from segkit.batch.preview import MISSING_MESSAGE, preview_available
from segkit.batch.report import BatchReport, read_report, report_name, utc_now
from segkit.batch.sharding import select_part
from segkit.batch.statistics import batch_statistics_csv, label_statistics
from segkit.errors import UserError
from segkit.io.segment_coding import coding_notes, segment_coding_for

# cases whose finish/write step may still run while the network works on the next case; each
# holds its class probabilities in preprocessed space, so this bounds memory on large images
MAX_PENDING_WRITES = 1
EXIT_OK, EXIT_CASES_FAILED = 0, 1
# report entry keys a --continue run copies from the earlier report for the cases it skips
CARRIED_KEYS = ("volumes_ml", "uncertainty", "notes", "axis_alignment")


@dataclass
class Outcome:
    """What happened to one item: its value, or the exception (with the last traceback lines), and seconds spent."""

    value: Any = None
    error: BaseException | None = None
    traceback: list[str] | None = None
    seconds: float = 0.0

    @property
    def failed(self) -> bool:
        """True when a step raised."""
        return self.error is not None


def _attempt(step: Callable, *args: Any) -> Outcome:
    """Run one step, catching its exception: one bad case must not stop the others."""
    start = time.perf_counter()
    try:
        value = step(*args)
    # Whatever a case raised is its recorded reason; the caller decides whether the run goes on.
    except Exception as err:
        lines = None if isinstance(err, UserError) else traceback.format_exc().strip().splitlines()[-12:]
        return Outcome(None, err, lines, time.perf_counter() - start)
    return Outcome(value, None, None, time.perf_counter() - start)


def _chain(previous: Outcome, step: Callable, *args: Any) -> Outcome:
    """The next step's outcome with the earlier steps' seconds added (skipped when an earlier step failed)."""
    if previous.failed:
        return previous
    outcome = _attempt(step, *args, previous.value)
    outcome.seconds += previous.seconds
    return outcome


def run_pipelined(items: Iterable[Any], load: Callable[[Any], Any], compute: Callable[[Any, Any], Any],
                  write: Callable[[Any, Any], Any], stop_on_error: bool = False) -> Iterator[tuple[Any, Outcome]]:
    """Yield (item, outcome) in item order: load (background, one ahead), compute (here), write (background).

    A failing step fails only its item; with stop_on_error no item is started after the first failure.
    """
    iterator = iter(items)
    pending: deque[tuple[Any, Future | Outcome]] = deque()
    stopped = False

    def submit_next(pool: ThreadPoolExecutor) -> tuple[Any, Future] | None:
        item = next(iterator, _END)
        return None if item is _END else (item, pool.submit(_attempt, load, item))

    def oldest() -> tuple[Any, Outcome]:
        item, work = pending.popleft()
        return item, work.result() if isinstance(work, Future) else work

    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="segkit-io") as pool:
        upcoming = submit_next(pool)
        while upcoming is not None and not stopped:
            item, future = upcoming
            loaded = future.result()
            upcoming = None if (stop_on_error and loaded.failed) else submit_next(pool)
            computed = _chain(loaded, compute, item)
            while len(pending) >= MAX_PENDING_WRITES:
                done = oldest()
                stopped |= stop_on_error and done[1].failed
                yield done
            if computed.failed:
                pending.append((item, computed))
                stopped |= stop_on_error
            else:
                pending.append((item, pool.submit(_chain, computed, write, item)))
        while pending:
            yield oldest()
        if upcoming is not None:
            upcoming[1].cancel()


_END = object()


@dataclass(frozen=True)
class RunOptions:
    """How a folder run goes: resume, sharding, fail-fast, report and progress, plus the run's description."""

    resume: bool = False
    num_parts: int = 1
    part_id: int = 0
    fail_fast: bool = False
    write_report: bool = True
    show_progress: bool | None = None   # None: only when stderr is a terminal
    run_info: dict = field(default_factory=dict)


def _reason(err: BaseException | None) -> str:
    """One-line failure reason: a UserError's message, else the exception type and message."""
    if isinstance(err, UserError):
        return str(err)
    text = str(err).strip()
    return f"{type(err).__name__}: {text.splitlines()[0]}" if text else type(err).__name__


def _entry(case: BatchCase, status: str, outcome: Outcome | None, seconds: float, names: dict[str, str],
           input_dir: Path, reason: str | None = None) -> dict:
    """A case's report entry."""
    inputs = [str(p.relative_to(input_dir)) if p.is_relative_to(input_dir) else str(p) for p in case.sources]
    entry = {"case_id": case.case_id, "status": status, "reason": reason, "seconds": round(seconds, 3),
             "inputs": inputs, "outputs": names if status != "failed" else {}}
    if outcome is not None and outcome.traceback:
        entry["traceback"] = outcome.traceback
    return entry


def _case_warnings(case: BatchCase, request: OutputRequest) -> list[str]:
    """Per-case notes that are not failures."""
    if request.dicom_seg and case.kind != "dicom":
        return ["--dicom-seg: not a DICOM input, no DICOM-SEG written"]
    return []


def _progress(total: int, show: bool | None):
    """A tqdm progress bar on a terminal (or when asked), else None: no carriage-return lines in log files."""
    if show is None:
        show = sys.stderr.isatty()
    if not show:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc="predict", unit="case")


def _case_steps(engine: Any, spec: InputSpec, request: OutputRequest):
    """load / compute / write functions of one case for run_pipelined."""
    keep = np.float16 if request.probabilities else None   # saved probabilities are float16

    def load(case: BatchCase) -> tuple:
        loaded = load_case(case, spec)
        assert loaded.images is not None
        for warning in loaded.warnings:      # one line each on stderr (a batch log shows it), and in report.json
            print(f"warning: {case.case_id}: {warning}", file=sys.stderr)
        prepared = engine.prepare(case.case_id, loaded.images, loaded.geometry)
        if not request.preview:
            # only the previews need the raw image after preprocessing (the QC picture: channel 0)
            loaded.images = loaded.images[:1] if request.qc_image else None
        return loaded, prepared

    def compute(case: BatchCase, work: tuple) -> tuple:
        loaded, prepared = work
        return loaded, prepared, engine.compute(prepared)

    def write(case: BatchCase, work: tuple) -> dict:
        loaded, prepared, computed = work
        prediction = engine.finish(prepared, computed, keep)
        names = output_names(case, request)
        metadata = None
        if request.probabilities:
            reference = case.sources[0] if case.kind == "files" else None
            metadata = engine.probability_metadata(prediction, case.file_ending, reference)
        write_outputs(case, loaded, prediction.labels, request, names, prediction.probabilities, metadata,
                      prediction.extra.get("uncertainty"), prediction.extra.get("uncertainty_maps"))
        volumes = label_statistics(case.case_id, prediction.labels, loaded.geometry, request.labels)["labels"]
        notes = list(loaded.notes)
        if "dicom_seg" in names:    # a label no SNOMED CT code was found for is coded as generic Tissue: say so
            notes += coding_notes(request.segment_coding or segment_coding_for(request.labels))
        value = {"names": names, "notes": notes,
                 "warnings": list(loaded.warnings) + list(getattr(prepared, "extra", {}).get("warnings", [])),
                 "volumes_ml": {name: round(entry["volume_ml"], 4) for name, entry in volumes.items()}}
        for key in ("uncertainty", "axis_alignment"):   # axis_alignment: the input was resampled for the network
            if prediction.extra.get(key) is not None:
                value[key] = prediction.extra[key]
        return value

    return load, compute, write


def _skip_entry(case: BatchCase, spec: InputSpec, request: OutputRequest, input_dir: Path) -> dict | None:
    """A 'skipped' entry when the case's outputs exist and are valid, else None."""
    start = time.perf_counter()
    names = output_names(case, request)
    if finished_problem(case, spec, request, names) is not None:
        return None
    return _entry(case, "skipped", None, time.perf_counter() - start, names, input_dir,
                  "outputs exist and were made from this input")


def _log_case(entry: dict) -> None:
    """A case_finished line for log collectors (JSON mode only; text runs show the progress bar and summary)."""
    uncertainty = entry.get("uncertainty") or {}
    fields = {"case_id": entry["case_id"], "status": entry["status"], "seconds": entry.get("seconds"),
              "reason": entry.get("reason"), "warnings": len(entry.get("warnings") or [])}
    if uncertainty:
        fields.update(uncertainty=uncertainty.get("score"), flagged=uncertainty.get("flagged"))
    level = "error" if entry["status"] == "failed" else "info"
    detail = f": {entry['reason']}" if entry.get("reason") and entry["status"] == "failed" else ""
    logs.emit(level, f"{entry['case_id']} {entry['status']}{detail}", "case_finished", text=False, **fields)


def _earlier_entries(path: Path | None) -> dict[str, dict]:
    """case id -> entry of the report an earlier run left at path (empty when there is none or it is unreadable)."""
    if path is None or not path.is_file():
        return {}
    try:
        return {entry["case_id"]: entry for entry in read_report(path)["cases"] if entry.get("status") != "failed"}
    except UserError:
        return {}


def predict_cases(engine: Any, cases: list[BatchCase], spec: InputSpec, request: OutputRequest,
                  options: RunOptions, input_dir: str | Path) -> BatchReport:
    """Predict this part's share of the (sorted) cases into request.output_dir; the report says what happened.

    With options.fail_fast the first failing case stops the run and its UserError is raised
    (exit 2) after the report is saved.
    """
    input_dir = Path(input_dir)
    preview_missing = request.preview and not preview_available()
    if preview_missing:
        request = replace(request, preview=False)
    mine = select_part(sorted(cases, key=lambda c: c.case_id), options.num_parts, options.part_id)
    header = {**options.run_info, "input": str(input_dir.resolve()), "output": str(request.output_dir.resolve()),
              "part": {"part_id": options.part_id, "num_parts": options.num_parts}, "started": utc_now()}
    path = request.output_dir / report_name(options.part_id, options.num_parts) if options.write_report else None
    earlier = _earlier_entries(path) if options.resume else {}
    report = BatchReport(path, header, num_cases=len(mine))
    if preview_missing:
        report.warn(MISSING_MESSAGE)
    report.save()
    bar = _progress(len(mine), options.show_progress)
    todo = []
    for case in mine:
        skipped = _skip_entry(case, spec, request, input_dir) if options.resume else None
        if skipped is None:
            todo.append(case)
            continue
        skipped["warnings"] = _case_warnings(case, request)
        skipped["notes"] = []
        for key in CARRIED_KEYS:   # what the earlier run measured on these very outputs
            if key in earlier.get(case.case_id, {}):
                skipped[key] = earlier[case.case_id][key]
        report.add(skipped)
        if bar is not None:
            bar.update()
    load, compute, write = _case_steps(engine, spec, request)

    def start(case: BatchCase) -> tuple:
        remove_stale_temporaries(request.output_dir, output_names(case, request))
        return load(case)

    first_error = None
    for case, outcome in run_pipelined(todo, start, compute, write, stop_on_error=options.fail_fast):
        names = output_names(case, request)
        if outcome.failed:
            entry = _entry(case, "failed", outcome, outcome.seconds, names, input_dir, _reason(outcome.error))
            first_error = first_error or outcome.error
        else:
            entry = _entry(case, "ok", outcome, outcome.seconds, names, input_dir)
        entry["warnings"] = _case_warnings(case, request) + (outcome.value or {}).get("warnings", [])
        entry["notes"] = (outcome.value or {}).get("notes", [])
        for key in CARRIED_KEYS:
            if outcome.value and key in outcome.value:
                entry[key] = outcome.value[key]
        report.add(entry)
        _log_case(entry)
        if bar is not None:
            bar.update()
    if bar is not None:
        bar.close()
    if first_error is not None and options.fail_fast:
        report.warn("stopped at the first failing case (--fail-fast)")
        _finish_report(report)
        raise first_error
    if request.statistics:
        csv_name = "statistics.csv" if options.num_parts == 1 else f"statistics_part{options.part_id}.csv"
        batch_statistics_csv(request.output_dir, report.cases, request.output_dir / csv_name)
    _finish_report(report)
    return report


def _finish_report(report: BatchReport) -> None:
    """Save the finished report.json and write report.html beside it from what was saved."""
    report.save(finished=True)
    if report.path is not None:
        write_html_report(read_report(report.path), report.path.parent, html_name(report.path.name))


def exit_code(report: BatchReport) -> int:
    """1 when any case failed, else 0 (run-level user errors exit 2 before a report exists)."""
    return EXIT_CASES_FAILED if report.any_failed else EXIT_OK
