"""report.json: what a batch run did to each case, rewritten atomically after every case.

Schema (schema_version 1)::

    {
      "schema_version": 1, "segkit_version": "0.1.0",
      "model": "/models/brain.zip", "configuration": "3d_fullres", "folds": [0],
      "input": "/data/in", "output": "/data/out",
      "part": {"part_id": 0, "num_parts": 1},
      "options": {"continue": false, "dicom_seg": true, "statistics": true, "preview": false},
      "started": "2026-11-26T08:00:00+00:00", "finished": null | "...",
      "state": "running" | "complete",
      "totals": {"cases": 10, "ok": 7, "failed": 3, "skipped": 0, "pending": 0},
      "warnings": ["--preview skipped: matplotlib is not installed ..."],
      "cases": [{"case_id": "c01", "status": "ok" | "failed" | "skipped", "reason": null | "...",
                 "seconds": 1.23, "inputs": ["c01_0000.nii.gz"],
                 "outputs": {"label": "c01.nii.gz", "dicom_seg": "c01_seg.dcm",
                             "statistics": "c01_stats.json", "preview": "c01_preview.png"}}]
    }

Paths in ``cases`` are relative to the output folder (inputs: to the input folder). A
failure that is not a UserError also keeps ``traceback`` (its last lines); each case has
``warnings`` (e.g. no DICOM-SEG for a NIfTI input, a lossy-compressed DICOM source; input warnings
are also printed on stderr) and ``notes`` (what the DICOM reader ignored or dropped: non-image
objects such as SR / KO / presentation states, exact duplicate files; a multi-frame source). A case
whose input was more oblique than the model's training images has ``axis_alignment``:
``{"oblique_degrees", "limit_degrees", "grid_spacing", "grid_shape", "seconds_to_grid", "seconds_back"}``
(it was resampled onto an axis-aligned grid for the network and its outputs mapped back; a warning
says so too). Batch predict adds the model identity
(``package_sha256`` for packages), device and post-processing to the header.
A sharded run writes ``report_part<K>.json``; ``merge_reports`` combines the parts. Each report
file gets its page beside it (``report.html``, ``report_part<K>.html``: `segkit.batch.html_report`).
Folder runs add per case ``volumes_ml`` ({structure: mL}) and, with ``--uncertainty``,
``uncertainty`` (score, per-structure scores, flagged); the header adds ``backend`` (name:
torch / onnxruntime / openvino, requested, device, library versions, the precision used; for
``--backend auto`` why and the measurement it decided from) and ``labels`` (the model's label names).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from segkit import logs
from segkit.batch.html_report import html_name, write_html_report
from segkit.errors import UserError
from segkit.jsonio import read_json, write_json
from segkit.version import __version__

SCHEMA_VERSION = 1
STATUSES = ("ok", "failed", "skipped")
REQUIRED_KEYS = ("schema_version", "state", "totals", "cases")


def utc_now() -> str:
    """Current UTC time as ISO 8601."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def report_name(part_id: int, num_parts: int) -> str:
    """report.json for a whole run, report_part<K>.json for one part of a sharded run."""
    return "report.json" if num_parts == 1 else f"report_part{part_id}.json"


@dataclass
class BatchReport:
    """The report of one run (or one part), kept in memory and saved after every case."""

    path: Path | None   # None: kept in memory only (e.g. cross-validation predictions)
    header: dict
    cases: list[dict] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    num_cases: int = 0

    def warn(self, message: str) -> None:
        """Record a run-level warning once, and say it on stderr (a batch log shows it too)."""
        if message not in self.warnings:
            self.warnings.append(message)
            logs.warning(message, event="run_warning")

    def add(self, entry: dict) -> None:
        """Record one finished case (ok/failed/skipped) and save the report."""
        if entry["status"] not in STATUSES:
            raise ValueError(f"unknown case status {entry['status']!r}")
        self.cases.append(entry)
        self.save()

    def totals(self) -> dict:
        """Counts per status plus pending cases."""
        counts = {status: sum(1 for c in self.cases if c["status"] == status) for status in STATUSES}
        return {"cases": self.num_cases, **counts, "pending": self.num_cases - len(self.cases)}

    def to_json(self, finished: bool = False) -> dict:
        """The report as written to disk."""
        return {"schema_version": SCHEMA_VERSION, "segkit_version": __version__, **self.header,
                "finished": utc_now() if finished else None, "state": "complete" if finished else "running",
                "totals": self.totals(), "warnings": list(self.warnings),
                "cases": sorted(self.cases, key=lambda c: c["case_id"])}

    def save(self, finished: bool = False) -> None:
        """Rewrite the report atomically (nothing when it has no path)."""
        if self.path is not None:
            write_json(self.path, self.to_json(finished))

    @property
    def any_failed(self) -> bool:
        """True when at least one case failed."""
        return any(c["status"] == "failed" for c in self.cases)


def read_report(path: Path) -> dict:
    """A report.json / report_part<K>.json (the single reader), checked for its required keys."""
    report = read_json(path, "batch report")
    missing = [key for key in REQUIRED_KEYS if not isinstance(report, dict) or key not in report]
    if missing:
        raise UserError(f"not a segkit batch report (lacks {', '.join(missing)})", path)
    if report["schema_version"] != SCHEMA_VERSION:
        raise UserError(f"batch report schema_version {report['schema_version']!r} is not {SCHEMA_VERSION}", path)
    return report


IDENTITY_KEYS = ("model", "package_sha256", "configuration", "folds", "checkpoint", "postprocessing",
                 "previous_stages")


def check_same_model(report_path: Path, run_info: dict) -> None:
    """With --continue, refuse to mix outputs of another model (per the earlier report), naming the difference."""
    if not report_path.is_file():
        return
    try:
        previous = read_report(report_path)
    except UserError:
        return  # an unreadable report is rewritten; the outputs themselves are still checked one by one
    key_order = ("package_sha256",) if run_info.get("package_sha256") else IDENTITY_KEYS
    for key in key_order:
        if key in previous and previous.get(key) != run_info.get(key):
            raise UserError(f"--continue: the outputs here were made with {key} {previous.get(key)!r}, this run "
                            f"uses {run_info.get(key)!r}; use a new output folder or drop --continue", report_path)
    # fp32 and bf16 label maps of one model can differ in boundary voxels: never mixed in one folder
    before, now = (previous.get("backend") or {}).get("precision"), (run_info.get("backend") or {}).get("precision")
    if before is not None and before != now:
        raise UserError(f"--continue: the outputs here were made with precision {before!r}, this run uses {now!r} "
                        "(--precision); use a new output folder or the same precision", report_path)


def merge_reports(output_dir: str | Path) -> Path:
    """Combine report_part<K>.json of a sharded run into report.json; every part must be complete."""
    output_dir = Path(output_dir)
    parts = sorted(output_dir.glob("report_part*.json"))
    if not parts:
        raise UserError("no report_part<K>.json files to merge", output_dir)
    reports = [read_report(path) for path in parts]
    num_parts = {r.get("part", {}).get("num_parts") for r in reports}
    if len(num_parts) != 1:
        raise UserError(f"part reports disagree on num_parts: {sorted(map(str, num_parts))}", output_dir)
    expected = set(range(num_parts.pop()))
    found = {r["part"]["part_id"] for r in reports}
    unfinished = [p.name for p, r in zip(parts, reports) if r.get("state") != "complete"]
    if found != expected or unfinished:
        raise UserError(f"cannot merge: missing parts {sorted(expected - found)}, unfinished {unfinished}", output_dir)
    cases = sorted((c for r in reports for c in r["cases"]), key=lambda c: c["case_id"])
    merged = {key: value for key, value in reports[0].items() if key not in ("part", "cases", "totals", "warnings")}
    merged.update(part={"part_id": None, "num_parts": len(reports), "merged_from": [p.name for p in parts]},
                  started=min(r["started"] for r in reports), finished=max(r["finished"] for r in reports),
                  warnings=sorted({w for r in reports for w in r.get("warnings", [])}),
                  totals={"cases": len(cases), **{s: sum(c["status"] == s for c in cases) for s in STATUSES},
                          "pending": 0},
                  cases=cases)
    merged_path = output_dir / report_name(0, 1)
    write_json(merged_path, merged)
    write_html_report(merged, output_dir, html_name(merged_path.name))
    return merged_path


def main(argv: list[str] | None = None) -> int:
    """python -m segkit.batch.report merge OUT: merge a sharded run's part reports (and statistics CSVs)."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("action", choices=["merge"])
    parser.add_argument("output_dir")
    args = parser.parse_args(argv)
    from segkit.batch.statistics import merge_statistics_csv

    try:
        path = merge_reports(args.output_dir)
        merge_statistics_csv(args.output_dir)
    except UserError as err:
        print(f"segkit merge-reports: error: {err}")
        return 2
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
