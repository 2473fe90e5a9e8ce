"""pruning.json: the inference pruning level of a model folder (UNet++), its one owner.

`segkit choose-pruning` (segkit/evaluation/choose_pruning.py) scores every level on the
validation cases and writes the file here; `load_model` reads it and sets the network's
`prune_level`, so `segkit predict`, the Python API and packages predict with the chosen
sub-network X^{0,P}. The file lives next to plans.json rather than in it: the plans entry is
what the checkpoints were trained with (its hash guards `--resume`), the level is an inference choice.

Format ("segkit-pruning-1"):
    {"format": "segkit-pruning-1", "prune_level": P, "depth": L, "tolerance": t,
     "levels": [{"level": j, "mean_dice": d, "dice": [...], "seconds": s}, ...],
     "folds": [...], "checkpoint": "final", "cases": n}
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from segkit.errors import UserError
from segkit.jsonio import read_json, write_json
from segkit.workdir import pruning_path

if TYPE_CHECKING:
    from torch import nn

PRUNING_FORMAT = "segkit-pruning-1"
REQUIRED_KEYS = ("format", "prune_level", "depth", "levels")


def write_pruning(model_dir: Path, record: dict) -> Path:
    """Write a model folder's pruning.json (atomically); returns its path."""
    missing = [key for key in REQUIRED_KEYS if key not in {**record, "format": PRUNING_FORMAT}]
    if missing:
        raise ValueError(f"pruning record lacks {missing}")
    path = pruning_path(model_dir)
    write_json(path, {"format": PRUNING_FORMAT, **record})
    return path


def read_pruning(model_dir: Path) -> dict | None:
    """A model folder's pruning.json, checked; None when the folder has none."""
    path = pruning_path(model_dir)
    if not path.is_file():
        return None
    record = read_json(path, "pruning.json")
    if not isinstance(record, dict) or record.get("format") != PRUNING_FORMAT:
        raise UserError(f"not a {PRUNING_FORMAT} file", path)
    missing = [key for key in REQUIRED_KEYS if key not in record]
    if missing:
        raise UserError(f"pruning.json lacks {missing}", path)
    level, depth = record["prune_level"], record["depth"]
    if not (isinstance(level, int) and isinstance(depth, int) and 1 <= level <= depth):
        raise UserError(f"prune_level must be an integer between 1 and depth ({depth!r}), got {level!r}", path)
    return record


def apply_pruning(network: nn.Module, model_dir: Path) -> int | None:
    """Set the network's prune_level from the folder's pruning.json; the level, or None without a file."""
    record = read_pruning(model_dir)
    if record is None:
        return None
    path = pruning_path(model_dir)
    if not hasattr(network, "prune_level") or getattr(network, "depth", None) != record["depth"]:
        raise UserError(f"pruning.json (depth {record['depth']}) does not fit this network "
                        f"({type(network).__name__}); delete it or re-run segkit choose-pruning", path)
    network.prune_level = int(record["prune_level"])   # type: ignore[assignment]  # a plain attribute
    return int(record["prune_level"])
