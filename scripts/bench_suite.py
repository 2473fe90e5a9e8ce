"""The real-data suite: one recipe variant against today's on every dataset, over seeds, side by side.

A default of the short recipe is decided on the suite's mean *and* its worst dataset (issue #27):
a change that raises one dataset and lowers another beyond the seed spread does not become one.

Datasets (each with held-out subjects that are never trained or validated on; built only from
images and labels that ship inside installed packages, provenance in docs/dependencies.md):
  brain-lateral  real T1 MR, 12 subcortical structures with left and right apart (realdata, lateral)
  brain-merged   real T1 MR, 8 structures with left and right merged (realdata: the development benchmark)
  ct-abdomen     real abdominal CT, 8 organs (TotalSegmentator's test CTs and reference masks: train on
                 deformations of one subject, hold out a second subject, contrast-enhanced, another grid)
  lesion-lung-ct real chest CT, one lesion (pyradiomics' test cases: train on deformations of lung2's 48 ml
                 tumour, hold out lung1's 1.4 ml nodule)
  lesion-brain-mr real brain MR, one lesion (pyradiomics' test cases: train on deformations of brain1,
                 hold out brain2)
The CT and lesion tasks have two real subjects each (one trained on, one held out), so their held-out
Dice is one case's. A dataset is one entry in DATASETS. The datasets are built by this tree's
scripts/realdata.py; both source trees plan, preprocess, train and predict them.

A cell is one (dataset, variant, seed): scripts/bench_real.py's steps (plan + preprocess once per
variant and dataset, train fold 0, predict and evaluate the held-out subjects). `--steps EPOCHS
ITERATIONS` trains a fixed number of steps on bench_real's FIXED_CONFIGURATION, which ranks recipes on
a loaded machine (wall-clock budgets are not comparable there); `--minutes` runs the time budget as
users do.

Resume: OUT/result.json keeps every finished cell with the protocol it was measured under (minutes or
steps, threads, --parallel, the commits of both source trees, the variant's arguments). A rerun with
the same --out and protocol runs only the missing cells, so the table can be completed over several
sessions; another protocol is refused (exit 2) unless --fresh (the old file is kept as
result.json.replaced-<time>). A cell is recorded only once its training, prediction and evaluation
have all finished: one killed half-way is rerun from scratch. Stop a run with Ctrl-C or `kill PID`
(SIGTERM): the segkit commands it runs are terminated with it. `--table` prints the table
of the finished cells (and `--markdown` the docs table) without running anything, naming the missing
ones. Run the source trees from fixed checkouts (not a branch others land on): a tree with a new
commit is another protocol.

`--parallel 2` runs today and the variant of the same (dataset, seed) at the same time, each pinned to
its own core (taskset) with one thread, so both see the same machine and the wall time halves; the
cores alternate with the seed, and each cell records its core and the load. The default is one cell
at a time with --threads (default: every core).

    python scripts/bench_suite.py --out /tmp/suite --steps 5 200 --seeds 0 1 2 --threads 1 \
        --today-root <checkout of today> [-- extra segkit train arguments for the variant]
    python scripts/bench_suite.py --out /tmp/suite --minutes 8 --seeds 0 1 2 --parallel 2 --today-root <...>
    python scripts/bench_suite.py --out /tmp/suite --table --markdown
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import sys
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import bench_real
import realdata

HERE = Path(__file__).resolve().parents[1]
VARIANTS = ("today", "variant")
DATASETS: dict[str, Callable[[Path], Path]] = {
    "brain-lateral": lambda root: realdata.build_dataset(root, lateral=True),
    "brain-merged": lambda root: realdata.build_dataset(root),
    "ct-abdomen": lambda root: realdata.build_ct_dataset(root),
    "lesion-lung-ct": lambda root: realdata.build_lesion_dataset(root, "lesion-lung-ct"),
    "lesion-brain-mr": lambda root: realdata.build_lesion_dataset(root, "lesion-brain-mr"),
}
# one cell: (dataset, variant, seed)
Cell = tuple[str, str, int]
# runs one cell on a core (None: unpinned) and returns its result row
RunCell = Callable[[Cell, "int | None"], dict]


class SuiteError(Exception):
    """A user mistake (another protocol in --out, bad options): one message, exit code 2."""


def split_of(dataset: Path) -> list[dict]:
    """Fold 0 of a built dataset: the last training case validates, the others train (held-out cases apart)."""
    cases = sorted(p.name[:-len("_0000.nii.gz")] for p in (dataset / "imagesTr").glob("*_0000.nii.gz"))
    return [{"train": cases[:-1], "val": cases[-1:]}]


def summarise(rows: list[dict]) -> dict:
    """Mean held-out Dice over seeds, its spread (max - min) and the per-seed values."""
    values = [r["held_out_mean_dice"] for r in rows]
    return {"mean": round(statistics.mean(values), 4), "spread": round(max(values) - min(values), 4),
            "per_seed": values}


def verdict(table: dict) -> dict:
    """Suite mean per variant, and whether the variant is lower than today on any dataset beyond the seed spread.

    Only datasets with finished cells of both variants count."""
    paired = {name: d for name, d in table.items() if all(v in d for v in VARIANTS)}
    if not paired:
        return {"suite_mean": {}, "lower_beyond_spread": [], "becomes_default": False, "datasets": []}
    means = {variant: round(statistics.mean(d[variant]["mean"] for d in paired.values()), 4) for variant in VARIANTS}
    worse = [name for name, d in paired.items()
             if d["today"]["mean"] - d["variant"]["mean"] > max(d["today"]["spread"], d["variant"]["spread"])]
    return {"suite_mean": means, "lower_beyond_spread": worse,
            "becomes_default": means["variant"] > means["today"] and not worse, "datasets": list(paired)}


def cell_key(cell: Cell) -> str:
    """The cell's key in result.json: DATASET/VARIANT/seedS."""
    name, variant, seed = cell
    return f"{name}/{variant}/seed{seed}"


def protocol_of(minutes: float, steps: list[int] | None, threads: int | None, parallel: int,
                commits: dict[str, str], variant_args: list[str]) -> dict:
    """What makes two cells comparable: the schedule, threads, side-by-side runs, both trees' commits, the variant."""
    return {"minutes": None if steps else minutes, "steps": list(steps) if steps else None, "threads": threads,
            "parallel": parallel, "commits": dict(commits), "variant_args": list(variant_args)}


def protocol_differences(stored: dict, current: dict) -> list[str]:
    """'field: stored -> current' for each protocol field that differs."""
    return [f"{field}: {stored.get(field)!r} -> {current.get(field)!r}"
            for field in sorted(set(stored) | set(current)) if stored.get(field) != current.get(field)]


def load_results(path: Path) -> dict | None:
    """OUT/result.json, or None when there is none yet."""
    if not path.is_file():
        return None
    try:
        results = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise SuiteError(f"{path}: not readable JSON ({error}); move it away or use --fresh") from None
    if not isinstance(results, dict) or not isinstance(results.get("cells"), dict) or "protocol" not in results:
        raise SuiteError(f"{path}: not a result file of this script (no protocol and cells; written by an older "
                         "version?); move it away or use --fresh")
    return results


def save_results(path: Path, results: dict) -> None:
    """Write result.json atomically (a kill never leaves half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(results, indent=1))
    os.replace(partial, path)


def open_results(path: Path, protocol: dict, fresh: bool) -> dict:
    """The results to continue: the stored ones under the same protocol, new ones, or refused (SuiteError)."""
    if fresh and path.is_file():
        path.rename(path.with_name(f"{path.name}.replaced-{time.strftime('%Y%m%dT%H%M%S')}"))
    stored = load_results(path)
    if stored is None:
        return {"protocol": protocol, "cpu_count": os.cpu_count(), "prepared": [], "cells": {}}
    differences = protocol_differences(stored["protocol"], protocol)
    if differences:
        raise SuiteError(f"{path} holds {len(stored['cells'])} cells measured under another protocol ("
                         + "; ".join(differences) + "): rerun with the same options and source trees, "
                         "another --out, or --fresh to start afresh")
    return stored


def expected_cells(datasets: Iterable[str], seeds: Iterable[int]) -> list[Cell]:
    """Every cell of the suite, seeds outermost (the variants of one seed and dataset side by side)."""
    return [(name, variant, seed) for seed in seeds for name in datasets for variant in VARIANTS]


def missing_cells(results: dict, cells: Iterable[Cell]) -> list[Cell]:
    """The cells without a finished result."""
    return [cell for cell in cells if cell_key(cell) not in results["cells"]]


def table_of(results: dict) -> dict:
    """dataset -> variant -> summarise() of its finished cells (seeds in order)."""
    rows: dict[str, dict[str, list[dict]]] = {}
    for row in sorted(results["cells"].values(), key=lambda r: (r["dataset"], r["variant"], r["seed"])):
        rows.setdefault(row["dataset"], {}).setdefault(row["variant"], []).append(row)
    return {name: {variant: summarise(v) for variant, v in variants.items()} for name, variants in rows.items()}


def markdown(results: dict, table: dict, judged: dict, missing: list[Cell]) -> str:
    """The docs table: per dataset and the suite mean, today vs the variant, with the verdict and missing cells."""
    protocol = results["protocol"]
    schedule = (f"{protocol['steps'][0]} x {protocol['steps'][1]} fixed steps" if protocol["steps"]
                else f"--time-budget {protocol['minutes']:g}")
    lines = [f"Protocol: {schedule}, threads {protocol['threads'] or 'all'}, parallel {protocol['parallel']}, "
             f"today {protocol['commits']['today']}, variant {protocol['commits']['variant']}"
             + (f" with `{' '.join(protocol['variant_args'])}`" if protocol["variant_args"] else ""), "",
             "| dataset | today: held-out Dice (per seed) | variant: held-out Dice (per seed) | variant - today | "
             "seed spread (max) | lower beyond spread |", "| --- | --- | --- | --- | --- | --- |"]
    for name, variants in table.items():
        today, variant = variants.get("today"), variants.get("variant")
        both = today is not None and variant is not None
        per_seed = {v: (" (" + " / ".join(f"{x:.4f}" for x in s["per_seed"]) + ")") if s else ""
                    for v, s in (("today", today), ("variant", variant))}
        lines.append(f"| {name} | {today['mean'] if today else 'missing'}{per_seed['today']} | "
                     f"{variant['mean'] if variant else 'missing'}{per_seed['variant']} | "
                     f"{round(variant['mean'] - today['mean'], 4) if both else ''} | "
                     f"{max(today['spread'], variant['spread']) if both else ''} | "
                     f"{('**yes**' if name in judged['lower_beyond_spread'] else 'no') if both else ''} |")
    if judged["suite_mean"]:
        lines.append(f"| **mean** ({len(judged['datasets'])} datasets) | **{judged['suite_mean']['today']}** | "
                     f"**{judged['suite_mean']['variant']}** | "
                     f"{round(judged['suite_mean']['variant'] - judged['suite_mean']['today'], 4)} | | |")
    lines += ["", f"Becomes a default: {'yes' if judged['becomes_default'] else 'no'}"
              + (f" (partial: {len(missing)} cells missing: {', '.join(cell_key(c) for c in missing)})" if missing
                 else " (every cell finished)")]
    return "\n".join(lines)


def report(results: dict, cells: list[Cell]) -> dict:
    """Table, verdict and missing cells of whatever is finished."""
    table = table_of(results)
    missing = missing_cells(results, cells)
    return {"table": table, "verdict": verdict(table), "missing": [cell_key(c) for c in missing],
            "complete": not missing}


def cores_for(seed: int, parallel: int, available: list[int]) -> dict[str, int | None]:
    """variant -> core: side by side, today and the variant swap cores with the seed; sequential: unpinned."""
    if parallel == 1:
        return {variant: None for variant in VARIANTS}
    return {variant: available[(i + seed) % parallel] for i, variant in enumerate(VARIANTS)}


def run_cells(results: dict, result_file: Path, todo: list[Cell], run: RunCell, parallel: int,
              available: list[int]) -> list[tuple[Cell, str]]:
    """Run the missing cells (side by side per dataset and seed with parallel 2), recording each as it finishes.

    A cell that fails is reported, not recorded (a rerun retries it); the others go on. Returns the failures."""
    failures: list[tuple[Cell, str]] = []

    def record(cell: Cell, core: int | None) -> None:
        """Run one cell and store its row; a failure is kept for the report."""
        try:
            row = run(cell, core)
        except Exception as error:  # noqa: BLE001 -- one broken cell must not stop the suite
            failures.append((cell, f"{type(error).__name__}: {error}"))
            print(json.dumps({"cell": cell_key(cell), "failed": str(error)}), flush=True)
            return
        results["cells"][cell_key(cell)] = row
        save_results(result_file, results)
        print(json.dumps({"cell": cell_key(cell), "core": core, "held_out_mean_dice": row["held_out_mean_dice"],
                          "loadavg_after": row.get("loadavg_after")}), flush=True)

    groups: dict[tuple[str, int], list[Cell]] = {}
    for cell in todo:
        groups.setdefault((cell[0], cell[2]), []).append(cell)
    with ThreadPoolExecutor(max_workers=parallel) as pool:
        try:
            for (_, seed), group in groups.items():
                cores = cores_for(seed, parallel, available)
                # both variants of a (dataset, seed) start together and the next pair waits for both
                list(pool.map(record, group, [cores[cell[1]] for cell in group]))
        except BaseException:
            bench_real.stop_running()   # before the pool waits for its threads: their commands end now
            raise
    return failures


def prepare(name: str, dataset: Path, variant: str, root: Path, work: Path, steps: list[int] | None) -> None:
    """Plan and preprocess one dataset with one source tree; fold 0's split; the fixed configuration for --steps."""
    bench_real.segkit(root, "plan", str(dataset), "--work-dir", str(work), "--configurations",
                      bench_real.CONFIGURATION, "--force")
    bench_real.segkit(root, "preprocess", str(dataset), "--work-dir", str(work), "-c", bench_real.CONFIGURATION)
    if steps:
        bench_real.fix_configuration(work)
    (work / "models" / bench_real.CONFIGURATION).mkdir(parents=True, exist_ok=True)
    (work / "models" / bench_real.CONFIGURATION / "splits.json").write_text(json.dumps(split_of(dataset)))


def segkit_cell(out: Path, roots: dict[str, Path], args: argparse.Namespace) -> RunCell:
    """The real run of one cell: bench_real's train + predict + evaluate, from scratch, its output in the cell's log."""
    def run(cell: Cell, core: int | None) -> dict:
        """Train, predict and evaluate one cell (its folder emptied first: an interrupted cell restarts)."""
        name, variant, seed = cell
        cell_dir = out / name / f"{variant}_seed{seed}"
        shutil.rmtree(cell_dir, ignore_errors=True)
        cell_dir.mkdir(parents=True)
        start = time.monotonic()
        row = bench_real.run_variant_seed(roots[variant], out / name / "data", out / name / f"work_{variant}",
                                          cell_dir, args.minutes, seed, args.threads,
                                          args.train_args if variant == "variant" else [], steps=args.steps,
                                          cpu=core, log_file=cell_dir / "log.txt")
        return {"dataset": name, "variant": variant, "core": core, "parallel": args.parallel,
                "cell_wall_s": round(time.monotonic() - start, 1),
                "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())} | row
    return run


def _interrupt(signum: int, frame: object) -> None:
    """SIGTERM handler: stop as Ctrl-C does."""
    raise KeyboardInterrupt


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="/tmp/bench_suite")
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--minutes", type=float, default=8.0)
    parser.add_argument("--steps", type=int, nargs=2, metavar=("EPOCHS", "ITERATIONS"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--threads", type=int, help="torch threads per training (default: every core; "
                        "--parallel 2: 1)")
    parser.add_argument("--parallel", type=int, choices=[1, 2], default=1,
                        help="2: today and the variant of one (dataset, seed) at once, each on its own core, 1 thread")
    parser.add_argument("--today-root", help="source tree of today's recipe (a fixed checkout)")
    parser.add_argument("--fresh", action="store_true", help="start afresh when --out holds another protocol's cells")
    parser.add_argument("--table", action="store_true", help="only print the table of the finished cells")
    parser.add_argument("--markdown", action="store_true", help="also print the docs' markdown table")
    parser.add_argument("train_args", nargs="*", help="extra `segkit train` arguments that define the variant")
    args = parser.parse_args(argv)
    if args.parallel > 1 and args.threads not in (None, 1):
        parser.error("--parallel 2 runs one thread per training; leave --threads out (or 1)")
    if args.parallel > 1:
        args.threads = 1
    if not args.table and not args.today_root:
        parser.error("--today-root is required to run cells (only --table works without it)")
    return args


def print_report(results: dict, cells: list[Cell], with_markdown: bool) -> dict:
    """Print the JSON table, verdict and missing cells (and the markdown table); return the report."""
    summary = report(results, cells)
    print(json.dumps(summary, indent=1))
    if with_markdown:
        print(markdown(results, summary["table"], summary["verdict"], missing_cells(results, cells)))
    return summary


def main(argv: list[str] | None = None) -> int:
    """Build the datasets, run the missing cells, print the suite table; the exit code."""
    args = parse_arguments(argv)
    out = Path(args.out)
    result_file = out / "result.json"
    cells = expected_cells(args.datasets, args.seeds)
    try:
        if args.table:
            results = load_results(result_file)
            if results is None:
                raise SuiteError(f"{result_file}: no results yet")
            print_report(results, cells, args.markdown)
            return 0
        available = sorted(os.sched_getaffinity(0))
        if args.parallel > len(available):
            raise SuiteError(f"--parallel {args.parallel} needs {args.parallel} cores; this process may use "
                             f"{len(available)}")
        if args.parallel > 1 and shutil.which("taskset") is None:
            raise SuiteError("--parallel 2 pins each training with taskset (util-linux), which is not installed")
        roots = {"today": Path(args.today_root).resolve(), "variant": HERE}
        if not (roots["today"] / "segkit" / "__init__.py").is_file():
            raise SuiteError(f"--today-root {roots['today']}: not a segkit source tree (no segkit/__init__.py)")
        commits = {v: bench_real.git_commit(r) for v, r in roots.items()}
        protocol = protocol_of(args.minutes, args.steps, args.threads, args.parallel, commits, args.train_args)
        results = open_results(result_file, protocol, args.fresh)
    except SuiteError as error:
        print(f"bench_suite: {error}", file=sys.stderr)
        return 2
    todo = missing_cells(results, cells)
    print(json.dumps({"protocol": protocol, "finished": len(cells) - len(todo), "to_run": len(todo)}), flush=True)
    for name in dict.fromkeys(cell[0] for cell in todo):
        data = out / name / "data"
        if not (data / "dataset.json").is_file():
            DATASETS[name](data)
        for variant in dict.fromkeys(cell[1] for cell in todo if cell[0] == name):
            work = out / name / f"work_{variant}"
            if f"{name}/{variant}" not in results["prepared"] or not (work / "plans.json").is_file():
                prepare(name, data, variant, roots[variant], work, args.steps)
                results["prepared"] = sorted(set(results["prepared"]) | {f"{name}/{variant}"})
                save_results(result_file, results)
    # SIGTERM stops the suite like Ctrl-C: the running segkit commands end with it, their cells unrecorded
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        failures = run_cells(results, result_file, todo, segkit_cell(out, roots, args), args.parallel, available)
    except KeyboardInterrupt:
        bench_real.stop_running()
        print(f"bench_suite: stopped; {len(missing_cells(results, cells))} cells missing (rerun the same command "
              "to continue)", file=sys.stderr)
        return 130
    summary = print_report(results, cells, args.markdown)
    for cell, message in failures:
        print(f"bench_suite: {cell_key(cell)} failed ({message}); its log: "
              f"{out / cell[0] / f'{cell[1]}_seed{cell[2]}' / 'log.txt'}", file=sys.stderr)
    return 1 if failures or not summary["complete"] else 0


if __name__ == "__main__":
    sys.exit(main())
