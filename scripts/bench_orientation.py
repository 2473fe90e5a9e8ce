"""Cost of the canonical reorientation: preprocessing per case and `segkit demo`, before vs after.

Preprocessing: one synthetic 4-channel case (BraTS-like 155x240x240, 1 mm, and an anisotropic
CT-like 120x256x256 at 3x0.8x0.8 mm resampled to 1.5x0.8x0.8 mm) preprocessed three ways,
alternating, median of --repeats: legacy plans (arrays as stored = the code path before this
change), canonical plans with an LPS-stored input (identity reorientation) and canonical plans
with a RAS-stored input (x and y flipped) or a sagittal one (axes permuted; isotropic case only,
where the permuted input needs the same resampling work).

Demo (`--demo-before SRC`): `segkit demo --minutes M` run with PYTHONPATH=SRC (the tree before
the change, e.g. /work/main) and with this tree, alternating, whole-command wall time.

    python scripts/bench_orientation.py --out docs/benchmarks/orientation.json --demo-before /work/main
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from segkit.plans import Plans  # noqa: E402
from segkit.preprocessing import preprocess_arrays  # noqa: E402

DIRECTIONS = {"LPS": (1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0), "RAS": (-1.0, 0, 0, 0, -1.0, 0, 0, 0, 1.0),
              "sagittal": (0, 0, 1.0, -1.0, 0, 0, 0, -1.0, 0)}


def _plans(target_spacing: list[float], canonical: bool) -> Plans:
    """Minimal 4-channel softmax plans, as the typed view preprocessing takes."""
    plans = {"num_channels": 4, "labels": {"background": 0, "a": 1, "b": 2}, "label_mode": "softmax",
             "outputs": {"a": [1], "b": [2]}, "num_outputs": 3,
             "normalization": [{"scheme": "zscore", "use_nonzero_mask": True}] * 4,
             "configurations": {"3d_fullres": {"target_spacing": target_spacing,
                                               "resampling": {"image_order": 3, "anisotropy_threshold": 3.0}}}}
    if canonical:
        plans["canonical_orientation"] = "LPS"
    return Plans.from_json(plans)


def _case(shape: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Images with a nonzero ellipsoid (so cropping does work) and a label map."""
    rng = np.random.default_rng(0)
    grid = np.ogrid[tuple(slice(0, n) for n in shape)]
    inside = sum(((g - n / 2) / (0.45 * n)) ** 2 for g, n in zip(grid, shape)) < 1
    images = (rng.normal(100, 20, (4,) + shape) * inside).astype(np.float32)
    labels = (inside & (rng.random(shape) > 0.7)).astype(np.int16) + (inside & (rng.random(shape) > 0.9))
    return images, labels


def time_preprocessing(repeats: int) -> list[dict]:
    """Seconds per case for each way, alternating, median of repeats."""
    scenarios = [("brats_like_1mm_no_resampling", (155, 240, 240), [1.0, 1.0, 1.0], [1.0, 1.0, 1.0]),
                 ("ct_like_resampled", (120, 256, 256), [3.0, 0.8, 0.8], [1.5, 0.8, 0.8])]
    results = []
    for name, shape, spacing, target in scenarios:
        images, labels = _case(shape)
        ways = {"before (legacy plans, as stored)": (_plans(target, False), DIRECTIONS["RAS"]),
                "canonical, LPS input": (_plans(target, True), DIRECTIONS["LPS"]),
                "canonical, RAS input": (_plans(target, True), DIRECTIONS["RAS"]),
                "canonical, sagittal input": (_plans(target, True), DIRECTIONS["sagittal"])}
        if len(set(spacing)) > 1:   # a permuted anisotropic input would resample differently: not comparable
            del ways["canonical, sagittal input"]
        times: dict[str, list[float]] = {way: [] for way in ways}
        for _ in range(repeats):
            for way, (plans, direction) in ways.items():
                start = time.perf_counter()
                preprocess_arrays(images, labels, spacing, plans, "3d_fullres", direction=direction)
                times[way].append(time.perf_counter() - start)
        medians = {way: statistics.median(values) for way, values in times.items()}
        fastest = {way: min(values) for way, values in times.items()}
        base, base_min = medians["before (legacy plans, as stored)"], fastest["before (legacy plans, as stored)"]
        # under a shared load the minimum is the least disturbed run: its ratio is the better estimate
        results.append({"scenario": name, "shape": list(shape), "spacing": spacing, "target_spacing": target,
                        "seconds_median": {w: round(v, 3) for w, v in medians.items()},
                        "seconds_min": {w: round(v, 3) for w, v in fastest.items()},
                        "seconds_all": {w: [round(v, 3) for v in vs] for w, vs in times.items()},
                        "ratio_to_before_median": {w: round(v / base, 3) for w, v in medians.items()},
                        "ratio_to_before_min": {w: round(v / base_min, 3) for w, v in fastest.items()}})
        print(json.dumps(results[-1]), flush=True)
    return results


def time_reorientation_step(repeats: int = 7) -> list[dict]:
    """The step that changed: crop (stored LPS input, no reorientation) vs crop into the canonical order
    (RAS: flips, sagittal: permutation) of a 4 x 155 x 240 x 240 case; min and median of repeats, alternating."""
    from segkit.preprocessing.crop import crop_to_nonzero
    from segkit.preprocessing.orientation import reorientation_for

    images, labels = _case((155, 240, 240))
    times: dict[str, list[float]] = {code: [] for code in DIRECTIONS}
    for _ in range(repeats):
        for code, direction in DIRECTIONS.items():
            reorientation = reorientation_for(direction)
            start = time.perf_counter()
            crop_to_nonzero(images, labels, reorientation)
            times[code].append(time.perf_counter() - start)
    base = min(times["LPS"])
    results = [{"input": code, "crop_seconds_min": round(min(v), 4), "crop_seconds_median": round(statistics.median(v), 4),
                "ratio_min_to_LPS": round(min(v) / base, 3)} for code, v in times.items()]
    for row in results:
        print(json.dumps(row), flush=True)
    return results


def time_demo(before_src: str, minutes: float, repeats: int, cases: int) -> dict:
    """Whole `segkit demo` wall time with the tree before the change and with this one, alternating."""
    times: dict[str, list[float]] = {"before": [], "after": []}
    for _ in range(repeats):
        for label, src in (("before", before_src), ("after", str(REPO))):
            with tempfile.TemporaryDirectory() as tmp:
                env = {**os.environ, "PYTHONPATH": src}
                start = time.perf_counter()
                subprocess.run([sys.executable, "-m", "segkit", "demo", "--out", str(Path(tmp) / "demo"),
                                "--minutes", str(minutes), "--cases", str(cases)], env=env, check=True, capture_output=True, cwd=tmp)
                times[label].append(time.perf_counter() - start)
                print(label, round(times[label][-1], 1), flush=True)
    medians = {k: statistics.median(v) for k, v in times.items()}
    return {"minutes": minutes, "cases": cases, "seconds_all": {k: [round(x, 1) for x in v] for k, v in times.items()},
            "seconds_median": {k: round(v, 1) for k, v in medians.items()},
            "ratio_after_to_before": round(medians["after"] / medians["before"], 3)}


def main() -> None:
    """Run the measurements and write them as JSON."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="orientation_bench.json")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--demo-before", help="source tree before the change (PYTHONPATH) to time `segkit demo`")
    parser.add_argument("--demo-minutes", type=float, default=0.5)
    parser.add_argument("--no-preprocessing", action="store_true", help="time only the demo")
    parser.add_argument("--step-only", action="store_true", help="time only the reorientation copy")
    parser.add_argument("--demo-repeats", type=int, default=1)
    parser.add_argument("--demo-cases", type=int, default=10, help="training cases the demo generates")
    args = parser.parse_args()
    result = {"machine": f"{platform.machine()}, {os.cpu_count()} CPUs", "load_average": os.getloadavg(),
              "reorientation_step": time_reorientation_step()}
    if args.step_only:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
        return
    result["preprocessing"] = [] if args.no_preprocessing else time_preprocessing(args.repeats)
    if args.demo_before:
        result["demo"] = time_demo(args.demo_before, args.demo_minutes, args.demo_repeats, args.demo_cases)
    result["load_average_after"] = os.getloadavg()
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result.get("demo", {}), indent=2))


if __name__ == "__main__":
    main()
