"""Run preprocessing over a dataset with a pool of worker processes and a progress bar."""

from __future__ import annotations

import multiprocessing
from dataclasses import dataclass
from pathlib import Path

from segkit.console import progress_bar
from segkit.errors import UserError
from segkit.io.dataset import load_dataset, training_cases
from segkit.plans import (
    Plans,
    configuration_of,
    configurations_of,
    normalization_of,
    num_channels_of,
    read_plans,
)
from segkit.preprocessing.normalize import check_normalization
from segkit.preprocessing.pipeline import preprocessing_fingerprint
from segkit.preprocessing.store import CaseTask, is_complete, make_tasks, preprocess_case, reuse_case
from segkit.workdir import plans_path, preprocessed_dir, resolve_work_dir


@dataclass
class PreprocessSummary:
    """What a preprocessing run did for one configuration."""

    config: str
    out_dir: Path
    processed: int
    skipped: int
    reused: int = 0


def load_plans(path: Path, configs: list[str]) -> Plans:
    """Read plans.json and check the parts preprocessing needs, naming the file on any problem."""
    plans = read_plans(path, "plans file", needs=("configurations",))
    try:
        for config in configs:
            configuration_of(plans, config)
        check_normalization(normalization_of(plans), num_channels_of(plans), str(path))
    except UserError as err:
        if err.path is None:
            raise UserError(str(err), path) from None
        raise
    return plans


def run_tasks(tasks: list[CaseTask], num_workers: int, desc: str) -> None:
    """Preprocess tasks in this process (num_workers <= 1) or a spawn pool, one case in flight per worker."""
    bar = progress_bar(total=len(tasks), desc=desc, unit="case", show=None if tasks else False)
    try:
        if num_workers <= 1 or len(tasks) <= 1:
            for task in tasks:
                preprocess_case(task)
                bar.update()
            return
        context = multiprocessing.get_context("spawn")
        with context.Pool(min(num_workers, len(tasks))) as pool:
            for _ in pool.imap_unordered(preprocess_case, tasks, chunksize=1):
                bar.update()
    finally:
        bar.close()


def preprocess_dataset(dataset: str | Path, configs: list[str], work_dir: str | Path | None = None,
                       plans_file: str | Path | None = None, num_workers: int = 1, force: bool = False
                       ) -> list[PreprocessSummary]:
    """Preprocess every training case of DATASET for each configuration; skip finished cases unless force.

    With force every case is recomputed from the raw images; a configuration preprocessed identically earlier in
    the same run is still linked instead of computed twice.
    """
    info = load_dataset(dataset)
    work = resolve_work_dir(dataset, work_dir)
    if not plans_file and not plans_path(work).is_file():
        raise UserError(f"plans.json not found in {work}: run `segkit plan {dataset}` first")
    plans_file = Path(plans_file) if plans_file else plans_path(work)
    plans = load_plans(plans_file, configs)
    if (planned := num_channels_of(plans)) != info.num_channels:
        raise UserError(f"plans are for {planned} channels, the dataset has {info.num_channels}", plans_file)
    cases = training_cases(info)
    if not cases:
        raise UserError("no training cases found", info.root)
    summaries = []
    # --force means "recompute from the raw images": folders already on disk may be stale (an image replaced
    # under the same name), so only configurations preprocessed in this run are linked from.
    done_by_hash = {} if force else earlier_folders(work, plans, configs)
    for config in configs:
        out_dir = preprocessed_dir(work, config)
        out_dir.mkdir(parents=True, exist_ok=True)
        tasks, skipped = make_tasks(cases, out_dir, plans, config, force)
        plans_hash = preprocessing_fingerprint(plans, config)
        reused = reuse_from_earlier(tasks, done_by_hash.get(plans_hash), out_dir)
        tasks = [task for task in tasks if task.case.case_id not in reused]
        run_tasks(tasks, num_workers, f"preprocess {config}")
        done_by_hash.setdefault(plans_hash, out_dir)
        summaries.append(PreprocessSummary(config, out_dir, len(tasks), skipped, len(reused)))
    return summaries


def earlier_folders(work: Path, plans: Plans, configs: list[str]) -> dict[str, Path]:
    """Preprocessed folders of other planned configurations already on disk, by preprocessing hash.

    E.g. 3d_cascade_fullres preprocesses exactly like 3d_fullres: preprocessed later, it links
    3d_fullres's finished cases instead of recomputing them.
    """
    folders: dict[str, Path] = {}
    for config in configurations_of(plans):
        folder = preprocessed_dir(work, config)
        if config not in configs and folder.is_dir():
            folders.setdefault(preprocessing_fingerprint(plans, config), folder)
    return folders


def reuse_from_earlier(tasks: list[CaseTask], source_dir: Path | None, out_dir: Path) -> set[str]:
    """Link the cases an earlier configuration of this run preprocessed identically; return their ids."""
    if source_dir is None:
        return set()
    reused = set()
    for task in tasks:
        if is_complete(source_dir, task.case.case_id, task.plans_hash):
            reuse_case(source_dir, out_dir, task.case.case_id)
            reused.add(task.case.case_id)
    return reused
