"""report.html of a large run: its size and how long headless Chromium takes to open it (issue #29).

Builds N phantom cases (3 of them broken), runs the real batch pipeline (`predict_cases`: report.json,
the QC pictures, report.html) with a deterministic stand-in network (intensity bands as labels, and an
uncertainty score per case so the review column is filled), then opens report.html in Debian's
headless Chromium over the DevTools protocol (tests/browser.py) --repeat times, each in a fresh tab,
and reports the file size and the time from the navigation request to the load event (all images
decoded), plus the page's own navigation timing. Optionally saves a screenshot.

    python scripts/bench_report_html.py --cases 100 --out /tmp/bench_html --screenshot docs/images/report-html.png
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import time
import zlib
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from browser import Chromium, find_chromium  # noqa: E402

from segkit.batch.cases import InputSpec, discover_cases  # noqa: E402
from segkit.batch.outputs import OutputRequest  # noqa: E402
from segkit.batch.pipeline import RunOptions, predict_cases  # noqa: E402
from segkit.inference.predictor import CasePrediction  # noqa: E402
from segkit.io.dicom_seg import segment_names  # noqa: E402
from segkit.io.image import Geometry, write_image  # noqa: E402
from segkit.phantom import PhantomSpec, make_case  # noqa: E402

LABELS = {"background": 0, "necrosis": 1, "edema": 2, "enhancing": 3}
SPEC = PhantomSpec(shape=(48, 96, 96), spacing=(3.0, 1.0, 1.0))


class BandEngine:
    """Stand-in network: channel-0 intensity bands become labels 1..3; a per-case uncertainty score."""

    def prepare(self, case_id: str, images: np.ndarray, geometry: Geometry) -> tuple:
        if images.shape[0] != 2:
            raise ValueError(f"{case_id}: {images.shape[0]} channel(s), the model needs 2")
        return case_id, images, geometry

    def compute(self, prepared: tuple) -> np.ndarray:
        low, mid, high = np.percentile(prepared[1][0], [60, 80, 95])
        label = np.zeros(prepared[1].shape[1:], dtype=np.uint8)
        label[prepared[1][0] > low], label[prepared[1][0] > mid], label[prepared[1][0] > high] = 2, 3, 1
        return label

    def finish(self, prepared: tuple, labels: np.ndarray, keep_probabilities=None) -> CasePrediction:
        score = round(float(np.random.default_rng(zlib.crc32(prepared[0].encode())).beta(2, 8)), 4)
        uncertainty = {"score": score, "threshold": 0.3, "flagged": score > 0.3, "structures": {}}
        return CasePrediction(prepared[0], labels, prepared[2], extra={"uncertainty": uncertainty})

    def probability_metadata(self, prediction, file_ending: str, reference=None) -> dict:
        return {}


def build_cases(folder: Path, count: int) -> None:
    """count cases of two channels; the last three broken (truncated, one channel, empty folder)."""
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        images, _, geometry = make_case(index, SPEC)
        channels = 1 if index == count - 2 else 2
        for channel in range(channels):
            write_image(images[channel], geometry, folder / f"case_{index:03d}_{channel:04d}.nii.gz")
    truncated = folder / f"case_{count - 3:03d}_0001.nii.gz"
    truncated.write_bytes(truncated.read_bytes()[: truncated.stat().st_size // 2])
    for path in folder.glob(f"case_{count - 1:03d}_*"):
        path.unlink()
    (folder / f"case_{count - 1:03d}").mkdir()


def main() -> int:
    """Run the benchmark; print one JSON line of results."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=100)
    parser.add_argument("--out", type=Path, default=Path("/tmp/bench_report_html"))
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--screenshot", type=Path)
    args = parser.parse_args()
    binary = find_chromium()
    if binary is None:
        raise SystemExit("no chromium: apt-get install chromium (or set SEGKIT_CHROMIUM)")
    shutil.rmtree(args.out, ignore_errors=True)
    build_cases(args.out / "in", args.cases)
    request = OutputRequest(args.out / "out", LABELS, segment_names(LABELS), qc_image=True)
    run_info = {"model": "stand-in (intensity bands)", "configuration": "3d_fullres", "folds": ["0", "1", "2"],
                "labels": LABELS, "options": {"precision": "auto", "tta": True},
                "backend": {"device": "cpu", "torch": "n/a", "precision": "fp32"}}
    start = time.perf_counter()
    predict_cases(BandEngine(), discover_cases(args.out / "in"), InputSpec(2), request,
                  RunOptions(run_info=run_info), args.out / "in")
    run_seconds = time.perf_counter() - start
    page_path = args.out / "out" / "report.html"
    loads, navigation = [], []
    with Chromium(binary) as browser:
        for _ in range(args.repeat):
            page = browser.new_page()
            loads.append(page.navigate(page_path.as_uri()))
            navigation.append(page.evaluate("performance.getEntriesByType('navigation')[0].loadEventEnd") / 1000)
            rows = page.evaluate("document.querySelectorAll('#cases tbody tr').length")
            broken = page.evaluate("Array.from(document.querySelectorAll('img.thumb')).filter(i => !i.naturalWidth)"
                                   ".length")
            errors = page.errors()
        if args.screenshot:
            page.screenshot(args.screenshot, width=1500, height=950)
    result = {"cases": args.cases, "rows": rows, "images_not_loaded": broken, "console_errors": errors,
              "html_bytes": page_path.stat().st_size, "html_mb": round(page_path.stat().st_size / 1e6, 2),
              "open_seconds_median": round(statistics.median(loads), 3), "open_seconds_max": round(max(loads), 3),
              "load_event_end_seconds_median": round(statistics.median(navigation), 3),
              "pipeline_seconds": round(run_seconds, 1), "chromium": binary, "machine": platform.node(),
              "cpus": os.cpu_count(), "load_average": os.getloadavg(), "date": time.strftime("%Y-%m-%d %H:%M UTC",
                                                                                           time.gmtime())}
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
