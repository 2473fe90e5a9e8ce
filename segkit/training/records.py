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


def plot_progress(records: list[dict], path: str | Path) -> bool:
    """Loss, Dice and learning-rate curves; returns False (no picture) when matplotlib is missing."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    epochs = [r["epoch"] for r in records if "epoch" in r]
    fig, (ax_loss, ax_lr) = plt.subplots(2, 1, figsize=(8, 7), sharex=True)
    ax_loss.plot(epochs, [r.get("train_loss") for r in records], label="train loss")
    ax_loss.plot(epochs, [r.get("val_loss") for r in records], label="val loss")
    ax_dice = ax_loss.twinx()
    ax_dice.plot(epochs, [r.get("val_mean_dice") for r in records], "g", label="val mean Dice")
    ax_dice.set_ylim(0, 1)
    ax_dice.set_ylabel("Dice")
    ax_loss.set_ylabel("loss")
    ax_loss.legend(loc="upper left")
    ax_dice.legend(loc="upper right")
    ax_lr.plot(epochs, [r.get("lr") for r in records], "k")
    ax_lr.set_ylabel("learning rate")
    ax_lr.set_xlabel("epoch")
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=80)
    plt.close(fig)
    return True
