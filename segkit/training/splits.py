"""The owner of splits.json (`WORK/models/<config>/splits.json`): a list of {"train": [...], "val": [...]}.

Training creates it once (seeded k-fold) and reuses it; cross-validation prediction and find-best read
it through `read_splits`, the single reader.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from segkit.errors import UserError
from segkit.jsonio import read_json, write_json

NUM_FOLDS = 5
SPLIT_SEED = 12345
REQUIRED_KEYS = ("train", "val")


def make_splits(case_ids: list[str], seed: int = SPLIT_SEED, num_folds: int = NUM_FOLDS) -> list[dict]:
    """Seeded k-fold split: [{"train": [...], "val": [...]}, ...]."""
    order = list(np.random.default_rng(seed).permutation(sorted(case_ids)))
    folds = [sorted(str(c) for c in order[k::num_folds]) for k in range(num_folds)]
    return [{"train": sorted(c for c in case_ids if c not in set(val)), "val": val} for val in folds]


def read_splits(path: Path) -> list[dict]:
    """A splits.json checked for its shape: a list of folds, each with 'train' and 'val' lists of case ids."""
    splits = read_json(path, "splits.json")
    if not isinstance(splits, list) or not all(
            isinstance(s, dict) and all(isinstance(s.get(key), list) for key in REQUIRED_KEYS) for s in splits):
        raise UserError("splits file must be a list of folds, each {\"train\": [...], \"val\": [...]} "
                        "with lists of case ids", path)
    return splits


def write_splits(path: Path, splits: list[dict]) -> None:
    """Write splits.json atomically."""
    write_json(path, splits)


def load_or_make_splits(path: Path, case_ids: list[str], write: bool) -> list[dict]:
    """Reuse splits.json when present (checking its cases exist), else create and save it."""
    if path.is_file():
        splits = read_splits(path)
        missing = sorted({c for s in splits for c in s["train"] + s["val"]} - set(case_ids))
        if missing:
            raise UserError(f"splits name cases that are not preprocessed: {missing[:5]}", path)
        return splits
    if len(case_ids) < NUM_FOLDS:
        raise UserError(f"only {len(case_ids)} preprocessed cases, {NUM_FOLDS}-fold cross-validation needs "
                        f"{NUM_FOLDS}: train with -f all, or write your own splits.json", path)
    splits = make_splits(case_ids)
    if write:
        write_splits(path, splits)
    return splits
