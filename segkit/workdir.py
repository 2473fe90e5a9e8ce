"""Where a dataset's artefacts live: WORK/{fingerprint.json, plans.json, preprocessed/, models/}."""

from __future__ import annotations

import os
from pathlib import Path


def default_work_dir(dataset: str | Path) -> Path:
    """`$SEGKIT_WORK/<name>` when that variable is set, else `<DATASET>_segkit` next to the dataset."""
    dataset = Path(dataset).resolve()
    root = os.environ.get("SEGKIT_WORK")
    if root:
        return Path(root) / dataset.name
    return dataset.parent / f"{dataset.name}_segkit"


def resolve_work_dir(dataset: str | Path, work_dir: str | Path | None) -> Path:
    """The explicit work dir if given, else the default for the dataset."""
    return Path(work_dir) if work_dir else default_work_dir(dataset)


def plans_path(work_dir: Path) -> Path:
    """plans.json inside a work dir."""
    return work_dir / "plans.json"


def fingerprint_path(work_dir: Path) -> Path:
    """fingerprint.json inside a work dir."""
    return work_dir / "fingerprint.json"


def preprocessed_dir(work_dir: Path, configuration: str) -> Path:
    """Folder of preprocessed arrays for one configuration."""
    return work_dir / "preprocessed" / configuration


def model_dir(work_dir: Path, configuration: str) -> Path:
    """Model folder (plans, dataset.json, splits, fold_k) for one configuration."""
    return work_dir / "models" / configuration
