"""Where a dataset's artefacts live: WORK/{fingerprint.json, plans.json, preprocessed/, models/}."""

from __future__ import annotations

import os
from pathlib import Path

RAW_VARIABLES = ("SEGKIT_RAW", "nnUNet_raw")
WORK_ROOT_NAME = "segkit_work"
LEGACY_SUFFIX = "_segkit"


def raw_roots() -> list[tuple[str, Path]]:
    """(variable, folder) for each raw-data variable that is set ($SEGKIT_RAW, then $nnUNet_raw)."""
    return [(name, Path(os.environ[name])) for name in RAW_VARIABLES if os.environ.get(name)]


def _raw_root_of(dataset: Path) -> Path | None:
    """The raw root ($SEGKIT_RAW / $nnUNet_raw) the dataset folder sits directly in, or None."""
    for _, root in raw_roots():
        if root.is_dir() and dataset.parent == root.resolve():
            return root.resolve()
    return None


def default_work_dir(dataset: str | Path) -> Path:
    """Where a dataset's work folder goes when --work-dir is not given (docs/environment.md).

    `$SEGKIT_WORK/<name>` when set; for a dataset inside a raw root ($SEGKIT_RAW, $nnUNet_raw)
    `segkit_work/<name>` beside that root, so nothing foreign lands in nnU-Net's raw folder and
    `-d ID` stays unambiguous (a `<name>_segkit` folder an earlier segkit made there is still
    used, its models kept); else `<DATASET>_segkit` next to the dataset.
    """
    dataset = Path(dataset).resolve()
    root = os.environ.get("SEGKIT_WORK")
    if root:
        return Path(root) / dataset.name
    legacy = dataset.parent / f"{dataset.name}{LEGACY_SUFFIX}"
    raw_root = _raw_root_of(dataset)
    if raw_root is None or legacy.is_dir():
        return legacy
    return raw_root.parent / WORK_ROOT_NAME / dataset.name


def is_work_folder(folder: Path) -> bool:
    """A folder segkit wrote (plans, fingerprint or models inside, or named <DATASET>_segkit), not a raw dataset."""
    return (folder.name.endswith(LEGACY_SUFFIX) or (folder / "plans.json").is_file()
            or (folder / "fingerprint.json").is_file() or (folder / "models").is_dir())


def dataset_of_work_dir(work_dir: Path) -> Path | None:
    """The raw dataset a default work dir belongs to: `<DATASET>_segkit`'s sibling, or `<name>` in a raw root."""
    candidates = [work_dir.parent / work_dir.name.removesuffix(LEGACY_SUFFIX)] if \
        work_dir.name.endswith(LEGACY_SUFFIX) else []
    candidates += [root / work_dir.name for _, root in raw_roots()]
    if work_dir.parent.name == WORK_ROOT_NAME:
        candidates += [sibling / work_dir.name for sibling in sorted(work_dir.parent.parent.iterdir())
                       if sibling.is_dir() and sibling != work_dir.parent]
    return next((c for c in candidates if (c / "labelsTr").is_dir()), None)


def resolve_work_dir(dataset: str | Path, work_dir: str | Path | None) -> Path:
    """The explicit work dir if given, else the default for the dataset."""
    return Path(work_dir) if work_dir else default_work_dir(dataset)


def plans_path(work_dir: Path) -> Path:
    """plans.json inside a work dir (or a model folder, which keeps the plan it was trained with)."""
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


def sibling_model_dir(model_dir_: Path, configuration: str) -> Path:
    """Another configuration's model folder beside this one (WORK/models/<config>, or inside an unpacked package)."""
    return model_dir_.parent / configuration


def models_root(work_dir: Path) -> Path:
    """The folder holding one model folder per configuration (WORK/models)."""
    return work_dir / "models"


def is_work_dir(path: Path) -> bool:
    """Whether a folder is a work dir (it has WORK/models), as opposed to one model folder."""
    return models_root(path).is_dir()


def model_dataset_path(model_dir_: Path) -> Path:
    """The dataset.json copy inside a model folder."""
    return model_dir_ / "dataset.json"


def splits_path(model_dir_: Path) -> Path:
    """splits.json of a model folder (segkit.training.splits owns its format)."""
    return model_dir_ / "splits.json"


def fold_name(fold: int | str | None) -> str:
    """`fold_<k>`, or `fold_all` for None / 'all'."""
    return "fold_all" if fold is None or str(fold) == "all" else f"fold_{fold}"


def fold_dir(model_dir_: Path, fold: int | str | None) -> Path:
    """One fold's folder (checkpoints, training log, validation/) inside a model folder."""
    return model_dir_ / fold_name(fold)


def checkpoint_path(fold_dir_: Path, kind: str) -> Path:
    """`checkpoint_<kind>.pt` (final, best, latest) inside a fold folder."""
    return fold_dir_ / f"checkpoint_{kind}.pt"


def validation_dir(model_dir_: Path, fold: int | str | None) -> Path:
    """Where a fold's cross-validation predictions (<CASE>.npz + label maps) go."""
    return fold_dir(model_dir_, fold) / "validation"


def pruning_path(model_dir_: Path) -> Path:
    """pruning.json of a model folder: the inference pruning level chosen on validation (UNet++)."""
    return model_dir_ / "pruning.json"


def uncertainty_calibration_path(model_dir_: Path) -> Path:
    """uncertainty_calibration.json of a model folder: the review threshold calibrated on cross-validation."""
    return model_dir_ / "uncertainty_calibration.json"


def find_best_path(work_dir: Path) -> Path:
    """find_best.json of a work dir (or of an unpacked package, which keeps the same name)."""
    return work_dir / "find_best.json"
