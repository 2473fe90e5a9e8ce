"""Training records: log.jsonl (one JSON line per epoch) and progress.png curves."""

from __future__ import annotations

import json
import os
import resource
import sys
from pathlib import Path

import torch

from segkit.jsonio import atomic_path


def peak_memory_bytes(device: torch.device) -> int:
    """CUDA max_memory_allocated on GPUs, else this process's peak resident set size."""
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def read_log(path: str | Path) -> list[dict]:
    """All records of a log.jsonl (an unfinished last line from a killed run is ignored)."""
    path = Path(path)
    if not path.is_file():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            break
    return records


def write_log(path: str | Path, records: list[dict]) -> None:
    """Rewrite log.jsonl atomically (used on resume to drop epochs after the checkpoint)."""
    with atomic_path(path, suffix=".jsonl") as tmp:
        tmp.write_text("".join(json.dumps(r) + "\n" for r in records))


def append_log(path: str | Path, record: dict) -> None:
    """Append one record as a JSON line and flush it to disk."""
    with open(path, "a") as handle:
        handle.write(json.dumps(record) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def preload_plotting() -> None:
    """Import matplotlib now (seconds on a loaded machine), so the first progress.png costs only the drawing."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot  # noqa: F401
    except ImportError:
        pass


def plot_progress(records: list[dict], path: str | Path) -> bool:
    """Loss, Dice and learning-rate curves; returns False (no picture) when matplotlib is missing."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    records = [r for r in records if "epoch" in r]
    fig, (ax_loss, ax_lr) = plt.subplots(2, 1, figsize=(8, 7), sharex=True)
    # markers on every series: validation every k epochs, or only at the end, and a 1-epoch run still show
    _series(ax_loss, records, "train_loss", "train loss", "C0", "o")
    _series(ax_loss, records, "val_loss", "val loss", "C1", "s")
    ax_dice = ax_loss.twinx()
    scope = "sampled" if any(r.get("val_scope") == "sampled" for r in records) else "full"
    _series(ax_dice, records, "val_mean_dice", f"val mean Dice ({scope})", "g", "D")
    ax_dice.set_ylim(0, 1)
    ax_dice.set_ylabel("Dice")
    ax_loss.set_ylabel("loss")
    for axis, where in ((ax_loss, "upper left"), (ax_dice, "upper right")):
        if axis.get_legend_handles_labels()[0]:
            axis.legend(loc=where)
    _series(ax_lr, records, "lr", "learning rate", "k", ".")
    ax_lr.set_ylabel("learning rate")
    ax_lr.set_xlabel("epoch")
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=80)
    plt.close(fig)
    return True


def _series(axis, records: list[dict], key: str, label: str, colour: str, marker: str) -> int:
    """Plot the epochs that have `key` (gaps skipped, every point marked); returns how many points."""
    points = [(r["epoch"], r[key]) for r in records if r.get(key) is not None]
    if points:
        axis.plot([p[0] for p in points], [p[1] for p in points], color=colour, marker=marker, markersize=4,
                  label=label)
    return len(points)
